"""The share market as brownie scripts (the same library as `edgeshare trade`).

Makers:
brownie run scripts/trade.py sell NODE_ID AMOUNT PRICE OUT.json [manifest.json] [permit]
brownie run scripts/trade.py buy NODE_ID AMOUNT PRICE OUT.json [manifest.json]
brownie run scripts/trade.py cancel ORDERS.json [manifest.json]
brownie run scripts/trade.py cancel_all [manifest.json]
Takers:
brownie run scripts/trade.py fill ORDERS.json [AMOUNT] [manifest.json]
brownie run scripts/trade.py book ORDERS.json|FOLDER [manifest.json]

AMOUNT is whole shares (2.5), PRICE whole stablecoin units per share (2.5); an empty
AMOUNT fills all that remains. Orders expire after 7 days and take fills of any size;
`sell ... permit` attaches a permit of the shares (no approval needed), `buy` approves
the market for the order's cost. Signing needs a key this process holds
($EDGESHARE_PRIVATE_KEY, or an account with its key in brownie). An orders file holding
several orders: use `edgeshare trade --index`.
"""

from __future__ import annotations

from pathlib import Path

from edgeshare import orders
from edgeshare.brownie_support import get_signer, get_suite, get_transactor
from edgeshare.errors import InputError, KeyUnavailable
from edgeshare.roles import Action
from edgeshare.suite import get_share_token
from edgeshare.units import SHARE_DECIMALS, Token


def _done(action: Action) -> Action:
    print(f"{action.what}: transaction {action.transaction} ({action.gas:,} gas)")
    return action


def _make(sell: bool, node_id: str, amount: str, price: str, out: str, manifest: str,
          permit: bool) -> orders.SignedOrder:  # fmt: skip
    suite = get_suite(manifest)
    signer = get_signer()
    if not signer.is_local:
        raise KeyUnavailable("signing an order needs a key here: set EDGESHARE_PRIVATE_KEY")
    share = suite.fetch_share_tokens([int(node_id)])[0]
    size = get_share_token(int(node_id)).parse(amount, "AMOUNT")
    unit_price = suite.fetch_stablecoin_token().parse(price, "PRICE")
    order = orders.build_order(suite, signer.address, share, sell, size, unit_price)
    domain, signed = orders.sign_market_order(suite, signer.export_key(), order, permit)
    if not sell:
        what = "approve the market for your stablecoin"
        tx = get_transactor()
        approval = orders.send_approve_market(
            tx, suite, suite.stablecoin, order.get_full_cost(), what
        )
        if approval is not None:
            _done(approval)
    orders.write_orders_file(Path(out), domain, [signed])
    print(f"wrote an order to {'sell' if sell else 'buy'} {amount} shares of node {node_id} "
          f"at {price} per share to {out}")  # fmt: skip
    return signed


def sell(node_id: str, amount: str, price: str, out: str, manifest: str = "",
         permit: str = "") -> orders.SignedOrder:  # fmt: skip
    """Sign an order to sell shares of a node (``permit``: attach a permit of them)."""
    return _make(True, node_id, amount, price, out, manifest, permit == "permit")


def buy(node_id: str, amount: str, price: str, out: str, manifest: str = "") -> orders.SignedOrder:
    """Sign an order to buy shares of a node, approving the market for its cost."""
    return _make(False, node_id, amount, price, out, manifest, False)


def _only_order(path: str) -> orders.SignedOrder:
    parsed = orders.read_orders_file(Path(path))
    if len(parsed.orders) != 1:
        raise InputError(f"{path} holds {len(parsed.orders)} orders: use `edgeshare "
                                "trade fill|cancel --index`")  # fmt: skip
    return parsed.orders[0]


def fill(order_file: str, amount: str = "", manifest: str = "") -> Action:
    """Fill the file's order (``amount`` whole shares; empty: all that remains)."""
    signed = _only_order(order_file)
    suite = get_suite(manifest)
    size = Token(SHARE_DECIMALS, "shares").parse(amount, "AMOUNT") if amount else None
    return _done(orders.send_fill(get_transactor(), suite, signed, size))


def cancel(order_file: str, manifest: str = "") -> Action:
    """Cancel the file's order (this account's own)."""
    signed = _only_order(order_file)
    return _done(orders.send_cancel(get_transactor(), get_suite(manifest), signed))


def cancel_all(manifest: str = "") -> Action:
    """Void every order this account signed so far."""
    return _done(orders.send_cancel_all(get_transactor(), get_suite(manifest)))


def book(path: str, manifest: str = "") -> list[orders.OrderStatus]:
    """The orders of a file or folder and their state on chain."""
    suite = get_suite(manifest)
    found = orders.read_orders([Path(path)])
    statuses = orders.check_orders(suite, [f.order for f in found])
    for filed, status in zip(found, statuses, strict=True):
        side = "sell" if status.order.sell else "buy"
        print(f"{filed.path.name}#{filed.index} {side} {status.remaining} base units at "
              f"{status.order.price_per_share} per share: {status.describe()}")  # fmt: skip
    return statuses
