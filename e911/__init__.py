"""E911: dispatchable-address validation (pure), the registration provider
interface with a built-in adapter, and the pure emergency-routing decision the
dialplan renderer uses."""
