"""Sign-in throttling for the service, kept in the record (so a restart does not reset it), and the client
address it is keyed on.

Two counters, so that neither can be turned against people it should not touch:

- **account at an address**: after `PAIR_FREE` failed sign-ins to one account from one address, each further
  try from that address waits `BASE`·2^(n−PAIR_FREE) seconds after the last one (at most `CAP`). Guessing one
  password is slowed where the guesser is; the account still signs in from every other address.
- **address**: after `ADDRESS_FREE` failures from one address across any names (a spray of random or real
  names), that address waits likewise, except for accounts that have signed in from it before: only their
  own counter slows them. A spray from a shared address (loopback, a NAT) thus never locks out its regular
  users, and never anyone at another address.

An attempt is counted before its password is checked, in one transaction with the check, so parallel guesses
cannot slip past the limit; a successful sign-in takes its count back and clears its account's counter at that
address. Counters are forgotten `FORGET_S` after their last failure.

The address is the TCP peer's, unless the peer is a proxy named with `serve --trusted-proxy`: then it is the
nearest untrusted address in its X-Forwarded-For. Forwarded headers from anyone else are ignored.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from leadmatch.errors import InputError
from leadmatch.record.store import utc_now

PAIR_FREE, ADDRESS_FREE = 5, 20
BASE, CAP = 2.0, 900.0
FORGET_S = 24 * 3600
NAME_CHARS = 64  # a name is kept to this length in the counters (the API refuses longer ones anyway)


def _wait(failures: int, free: int, last_at: float, now: float) -> float:
    """Seconds still to wait after `failures` counted attempts, the last at `last_at` (0: none)."""
    if failures < free:
        return 0.0
    return max(0.0, last_at + min(CAP, BASE * 2 ** (failures - free)) - now)


@dataclass(frozen=True)
class SignInThrottle:
    """The service's sign-in throttle: its rules; the counts live in the record (tables sign_in_failures and
    sign_in_addresses). `clock` gives the time in seconds (tests pass their own)."""

    clock: object = time.time

    def wait(self, conn, name: str, address: str) -> float:
        """Seconds before `name` may try again from `address` (0: now). Call inside the attempt's transaction."""
        now = self.clock()
        conn.execute("DELETE FROM sign_in_failures WHERE last_at < ?", (now - FORGET_S,))
        name = name[:NAME_CHARS]
        pair = self._row(conn, "account", name, address)
        waits = [_wait(pair[0], PAIR_FREE, pair[1], now)]
        known = conn.execute("SELECT 1 FROM sign_in_addresses WHERE name = ? AND address = ?",
                             (name, address)).fetchone()
        if not known:
            spray = self._row(conn, "address", "", address)
            waits.append(_wait(spray[0], ADDRESS_FREE, spray[1], now))
        return max(waits)

    def charge(self, conn, name: str, address: str) -> None:
        """Count an attempt (before its password is checked) against the account at `address` and the address."""
        now = self.clock()
        for scope, key in (("account", name[:NAME_CHARS]), ("address", "")):
            conn.execute("INSERT INTO sign_in_failures (scope, name, address, failures, last_at) VALUES (?, ?, ?, 1, ?) "
                         "ON CONFLICT (scope, name, address) DO UPDATE SET failures = failures + 1, "
                         "last_at = excluded.last_at", (scope, key, address, now))

    def succeeded(self, conn, name: str, address: str) -> None:
        """A good password: clear the account's count at `address`, take this attempt back from the address's
        count, and remember the address as one the account signs in from."""
        name = name[:NAME_CHARS]
        conn.execute("DELETE FROM sign_in_failures WHERE scope = 'account' AND name = ? AND address = ?",
                     (name, address))
        conn.execute("UPDATE sign_in_failures SET failures = max(0, failures - 1) WHERE scope = 'address' "
                     "AND address = ?", (address,))
        conn.execute("INSERT INTO sign_in_addresses (name, address, last_ok_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (name, address) DO UPDATE SET last_ok_at = excluded.last_ok_at",
                     (name, address, utc_now()))

    @staticmethod
    def _row(conn, scope: str, name: str, address: str) -> tuple[int, float]:
        row = conn.execute("SELECT failures, last_at FROM sign_in_failures WHERE scope = ? AND name = ? "
                           "AND address = ?", (scope, name, address)).fetchone()
        return (row[0], row[1]) if row else (0, 0.0)


def trusted_networks(proxies) -> tuple:
    """`serve --trusted-proxy` values (addresses or networks, e.g. 10.0.0.5 or 10.0.0.0/24) parsed; a bad one
    is an InputError naming it."""
    networks = []
    for proxy in proxies or ():
        try:
            networks.append(ipaddress.ip_network(str(proxy).strip(), strict=False))
        except ValueError:
            raise InputError(f"--trusted-proxy {proxy!r} is not an IP address or network",
                             "give the proxy's address, e.g. 127.0.0.1 or 10.0.0.0/24") from None
    return tuple(networks)


def _trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, networks: tuple) -> str | None:
    """The address a request comes from: the TCP `peer`, or, when the peer is a trusted proxy, the nearest
    address in its X-Forwarded-For that is not itself a trusted proxy (a value that is not an IP address ends
    the walk: everything left of it was written by the client and proves nothing)."""
    if not peer or not forwarded_for or not _trusted(peer, networks):
        return peer
    address = peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        address = hop
        if not _trusted(hop, networks):
            break
    return address
