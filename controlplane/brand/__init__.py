"""The partner's company, brand and notification preferences (seed 003 Settings tabs 1, 2, 4)."""
