"""Partner users: roles, invitations, the acting user of portal requests, and the setup checklist."""
