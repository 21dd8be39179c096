"""Share offerings as brownie scripts (the same library as `edgeshare offering`).

Operators:
brownie run scripts/offering.py create NODE_ID SHARES PRICE SOFT_CAP END [HARD_CAP]
    [START] [INVESTOR_CAP] [manifest.json] --network NAME
Investors (claim and refund take an investor to act for; anyone may):
brownie run scripts/offering.py commit OFFERING AMOUNT [manifest.json]
brownie run scripts/offering.py cancel OFFERING [AMOUNT] [manifest.json]
brownie run scripts/offering.py claim|refund OFFERING [INVESTOR] [manifest.json]
Anyone:
brownie run scripts/offering.py finish OFFERING [manifest.json]
brownie run scripts/offering.py [main] [NODE_ID] [manifest.json]     (lists the offerings)

SHARES are whole shares; PRICE (per whole share), the caps and AMOUNT are whole stablecoin
units (2.5). END and START are unix seconds, ISO-8601 UTC or, for END, a duration after
START (7d); START defaults to now, HARD_CAP to what all the shares cost, "" skips one.
"""

from __future__ import annotations

from edgeshare import offerings
from edgeshare.brownie_support import get_suite, get_transactor
from edgeshare.roles import Action
from edgeshare.suite import get_share_token


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def create(
    node_id: str,
    shares: str,
    price: str,
    soft_cap: str,
    end: str,
    hard_cap: str = "",
    start: str = "",
    investor_cap: str = "",
    manifest: str = "",
) -> Action:
    """Offer shares of this account's node; ``details["offering"]`` is its address."""
    suite = get_suite(manifest)
    coin, node = suite.fetch_stablecoin_token(), int(node_id)
    offered = get_share_token(node).parse(shares, "SHARES")
    per_share = coin.parse(price, "PRICE")
    hard = coin.parse(hard_cap, "HARD_CAP") if hard_cap else offered * per_share // 10**18
    _, now = offerings.fetch_head(suite)
    opens = offerings.parse_time(start or "now", "START", now=now)
    closes = offerings.parse_time(end, "END", now=now, after=opens)
    cap = coin.parse(investor_cap, "INVESTOR_CAP") if investor_cap else 0
    action = offerings.send_create_offering(
        get_transactor(), suite, node, offered, per_share, coin.parse(soft_cap, "SOFT_CAP"),
        hard, opens, closes, cap,
    )  # fmt: skip
    print(f"offering {action.details['offering']} of node {node}: open "
          f"{offerings.format_time(opens)} to {offerings.format_time(closes)}")  # fmt: skip
    return _done(action)


def commit(offering: str, amount: str, manifest: str = "") -> Action:
    """Commit stablecoin to an open offering (approves it first if needed)."""
    suite = get_suite(manifest)
    value = suite.fetch_stablecoin_token().parse(amount, "AMOUNT")
    return _done(offerings.send_commit(get_transactor(), suite, offering, value))


def cancel(offering: str, amount: str = "", manifest: str = "") -> Action:
    """Take back some (default: all) of this account's commitment before the end."""
    suite = get_suite(manifest)
    value = suite.fetch_stablecoin_token().parse(amount, "AMOUNT") if amount else None
    return _done(offerings.send_cancel(get_transactor(), suite, offering, value))


def claim(offering: str, investor: str = "", manifest: str = "") -> Action:
    """Deliver the shares of a succeeded offering (this account's, or INVESTOR's)."""
    suite = get_suite(manifest)
    tx = get_transactor()
    return _done(offerings.send_claim_shares(tx, suite, offering, investor or None))


def refund(offering: str, investor: str = "", manifest: str = "") -> Action:
    """Pay back the commitment of a failed offering (this account's, or INVESTOR's)."""
    suite = get_suite(manifest)
    return _done(offerings.send_refund(get_transactor(), suite, offering, investor or None))


def finish(offering: str, manifest: str = "") -> Action:
    """Close an ended offering's books: pays the operator and the treasury."""
    return _done(offerings.send_finish(get_transactor(), get_suite(manifest), offering))


def main(node_id: str = "", manifest: str = "") -> list[offerings.OfferingView]:
    """Print every offering (of NODE_ID, if given) with its progress."""
    suite = get_suite(manifest)
    coin = suite.fetch_stablecoin_token()
    views = offerings.fetch_offerings(suite, int(node_id) if node_id else None)
    for v in views:
        print(
            f"{v.address} node {v.node_id} {v.state}: {coin.format(v.total_committed)} "
            f"committed of soft cap {coin.format(v.soft_cap)}, hard cap "
            f"{coin.format(v.hard_cap)}; ends {offerings.format_time(v.end)}"
        )
    if not views:
        print("no offerings")
    return views
