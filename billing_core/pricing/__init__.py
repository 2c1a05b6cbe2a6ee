"""Pricing as data: the catalog and ``quote``, the default TOML, and what-ifs between two pricings."""
