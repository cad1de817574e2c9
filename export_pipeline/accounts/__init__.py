"""Who may do what: project members and roles, personal access tokens, users' email addresses."""
