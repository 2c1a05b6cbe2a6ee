"""Who may do what: roles and permissions, sign-in claims to a role, and the audit log of every change."""
