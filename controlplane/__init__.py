"""Telephony control plane for white-label VoIP resellers, beside Asterisk."""

__version__ = "0.1.0"
