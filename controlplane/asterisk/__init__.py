"""Asterisk: running it (runner), its credentials, and the ARI/AMI clients."""
