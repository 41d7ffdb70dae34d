"""MakerDAO: vaults, Dog and Clipper (Liquidations 2.0), Cat and Flipper (1.2), Vow and Flopper."""
