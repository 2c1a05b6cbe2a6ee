"""Top-up orders: customers, the order lifecycle and ledger, gateway actions, refunds, detail and search."""
