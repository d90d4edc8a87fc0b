-- The token check looks users up by the hash of their API token.
CREATE INDEX users_api_token_hash ON users (api_token_hash);
