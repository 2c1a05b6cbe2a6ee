"""Making the books match the providers: stuck orders, Stripe events, settlement files."""
