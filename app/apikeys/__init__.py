"""Managing API keys (DS-6): the /api-keys endpoints and the CLI behind them. Authenticating a
request with a key is the kernel's job (``app.auth``); issuing and revoking keys is audited
here, above it."""
