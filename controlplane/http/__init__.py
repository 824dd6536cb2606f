"""The RPC server: one aiohttp application for the portal and partners' integrations."""
