-- the service's sign-in throttle (issue 19), kept here so a restart does not reset it: failed attempts
-- per account at an address and per address (scope 'address', name ''), and the addresses each account
-- signed in from (those are not slowed by their address's count).
CREATE TABLE sign_in_failures (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_at REAL NOT NULL,
    PRIMARY KEY (scope, name, address)
);
CREATE INDEX sign_in_failures_age ON sign_in_failures (last_at);
CREATE TABLE sign_in_addresses (
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    last_ok_at TEXT NOT NULL,
    PRIMARY KEY (name, address)
);
