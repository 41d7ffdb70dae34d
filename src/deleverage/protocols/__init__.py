"""DeFi protocols as implementations of the Venue protocol (lending, CDP, oracle-pool perps)."""
