"""Credits as finance sees them: the ledger's pools and rollups, usage imports, the liability roll-forward."""
