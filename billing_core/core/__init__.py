"""The ground every capability stands on: domain errors, money, the database and its models, settings, exports."""
