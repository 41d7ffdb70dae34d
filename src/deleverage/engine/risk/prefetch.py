"""A cache-line prefetch for the kernels: :func:`prefetch` (``llvm.prefetch``, a hint).

On a cascade day a batch round (:func:`~deleverage.engine.risk.round_kernel.round_nb`) reads
and writes the rows of ~50 candidates in eight million-row columns (cash, margin, size,
entry, realized PnL, mode, kind, the scratch flags). Between rounds the day's other kernels
sweep other memory, so those rows are cold, and the settlement reads them row by row behind
long chains of arithmetic: the misses come one or two at a time. Asking for every line first
lets them overlap (the kernel's time in the day, per round: benchmarks/HISTORY.md, speed round
13, ``round14``). A prefetch never faults and changes no value: the results stay bit for bit.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir  # type: ignore[import-untyped]
from numba.core import cgutils, types
from numba.extending import intrinsic

_I32 = ir.IntType(32)


def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """:func:`prefetch`'s typing and code: ``arr[idx]``'s cache line for writing
    (``llvm.prefetch``: rw 1, locality 3, data); no bounds check (a hint: an address outside
    ``arr`` is never read)."""
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, aryty, ary, [args[1]], wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, fnty, "llvm.prefetch.p0i8"
        )
        flags = [ir.Constant(_I32, 1), ir.Constant(_I32, 3), ir.Constant(_I32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
        return context.get_dummy_value()

    return sig, codegen


#: ``prefetch(arr, idx)`` inside a kernel: ask for ``arr[idx]``'s cache line (for writing).
prefetch: Any = intrinsic(_prefetch)
