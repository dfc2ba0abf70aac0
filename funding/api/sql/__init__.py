"""The API app's SQL (functions), documented as installed; each migration carries its own copy."""
