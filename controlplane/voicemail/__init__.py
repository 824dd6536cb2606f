"""voicemail capability."""
