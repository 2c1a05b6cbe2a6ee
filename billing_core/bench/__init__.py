"""Every benchmark suite. It imports the domain; nothing in the domain imports it."""
