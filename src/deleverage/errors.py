"""Exceptions raised by deleverage.

Every error a caller can provoke with bad input derives from :class:`DeleverageError`, so
``except DeleverageError`` catches them all. Messages name the field, the value and the rule.

Exception tree::

    DeleverageError
    ├── ValidationError          (also a ValueError) bad configuration or argument value
    │   ├── ConfigError          malformed TOML/JSON or unknown keys in a spec or scenario
    │   └── DataError            malformed data file (prices, journal, book snapshot)
    ├── UnknownEntityError       (also a KeyError) unknown market, account or policy name
    ├── MarginError              an operation would breach a margin requirement
    │   ├── InsufficientMarginError   trade or margin removal below initial margin
    │   └── InsufficientFundsError    withdrawal, stake or transfer beyond free collateral
    ├── StateError               an operation not allowed in the current state
    │   ├── CooldownError        unstake before cooldown, liquidation during cooldown
    │   └── HaltedError          trading or liquidation halted by a circuit breaker
    └── InvariantError           an internal invariant (money conservation) was broken
"""

from __future__ import annotations


class DeleverageError(Exception):
    """Base class of every error raised by deleverage."""


class ValidationError(DeleverageError, ValueError):
    """A value breaks a rule: the message names the field, the value and the rule."""

    def __init__(self, field: str, value: object, rule: str, *, message: str = "") -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(message or f"`{field}` {rule}, was {value!r}")


class ConfigError(ValidationError):
    """A configuration file or mapping is malformed or has unknown keys."""


class DataError(ValidationError):
    """A data file (prices, journal, order book) is malformed."""


class UnknownEntityError(DeleverageError, KeyError):
    """A market, account or policy name that does not exist."""

    def __init__(self, field: str, value: object, known: str = "") -> None:
        self.field = field
        self.value = value
        suffix = f"; known: {known}" if known else ""
        self.message = f"unknown {field} {value!r}{suffix}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class MarginError(DeleverageError):
    """An operation would leave an account below a margin requirement."""


class InsufficientMarginError(MarginError):
    """A trade or margin change would leave an account below initial margin."""


class InsufficientFundsError(MarginError):
    """A withdrawal, stake or transfer exceeds the free collateral or cash available."""


class StateError(DeleverageError):
    """An operation that the current state does not allow."""


class CooldownError(StateError):
    """An action requested before its cooldown has elapsed."""


class HaltedError(StateError):
    """An action refused because a circuit breaker halted the market."""


class InvariantError(DeleverageError):
    """An internal invariant (such as conservation of money) does not hold."""
