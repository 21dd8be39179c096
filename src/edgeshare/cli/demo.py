"""``edgeshare demo``: the whole story on a local chain started and stopped here."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from edgeshare.chain import ENGINES, Engine, LocalChain, build_dev_keys, connect
from edgeshare.cli import console
from edgeshare.cli.common import Json, load_suite
from edgeshare.demo import (
    MAX_NODES,
    MOCK_USDC,
    DemoSummary,
    get_accounts_needed,
    get_keys_needed,
    run_demo,
    stage_web_demo,
)
from edgeshare.errors import InputError
from edgeshare.signer import Signer


def demo(
    nodes: Annotated[int, typer.Option(help=f"Nodes to register (1-{MAX_NODES}).")] = 20,
    investors: Annotated[int, typer.Option(help="Investors buying shares.")] = 50,
    epochs: Annotated[int, typer.Option(help="Epochs of usage (2 hours each).")] = 12,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same numbers.")] = 7,
    engine: Annotated[str, typer.Option(help="anvil or ganache.")] = "anvil",
    reports_dir: Annotated[Path, typer.Option(help="Where the reports are written.")] = Path(
        "reports"
    ),
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="After the story, keep the chain and serve the web app on it (an open "
            "offering, orders in the book, channels) until Ctrl-C.",
        ),
    ] = False,
    host: Annotated[
        str, typer.Option("--host", help="With --serve: the address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65_535, help="With --serve: the port to listen on (0: any free)."
        ),
    ] = 8000,
    json_output: Json = False,
) -> None:
    """Run the EdgeShare story end to end on a fresh local chain (with --serve, then serve
    the web app on it until Ctrl-C)."""
    if not 1 <= nodes <= MAX_NODES:
        raise InputError(f"--nodes must be 1 to {MAX_NODES}")
    if investors < 1 or epochs < 1:
        raise InputError("--investors and --epochs must be at least 1")
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}")
    engine_name: Engine = "ganache" if engine == "ganache" else "anvil"
    log = (lambda _m: None) if json_output else console.note
    with (
        tempfile.TemporaryDirectory(prefix="edgeshare-demo-") as workdir,
        LocalChain(engine_name, accounts=get_accounts_needed(nodes, investors)) as chain,
    ):
        log(f"started {engine} at {chain.url}")
        summary = run_demo(
            connect(chain.url),
            build_dev_keys(get_keys_needed(nodes, investors)),
            nodes=nodes,
            investors=investors,
            epochs=epochs,
            seed=seed,
            reports_dir=reports_dir,
            workdir=Path(workdir),
            log=log,
        )
        _print_summary(summary, json_output)
        if serve:
            _serve(chain.url, Path(workdir), nodes, investors, host, port, log)
    if not json_output:
        console.note("the local chain has been stopped")


def _serve(
    url: str,
    workdir: Path,
    nodes: int,
    investors: int,
    host: str,
    port: int,
    log: Callable[[str], None],
) -> None:
    """Leave something for each page, then serve the web app on the demo's chain."""
    from edgeshare.web import WebConfig, serve_web  # the server libraries: only when serving

    w3 = connect(url)
    keys = build_dev_keys(get_keys_needed(nodes, investors))
    investor, operator = Signer.from_key(keys[1 + nodes]), Signer.from_key(keys[1])
    stage = stage_web_demo(w3, keys, nodes=nodes, investors=investors, workdir=workdir, log=log)
    suite = load_suite(w3, stage.manifest)
    config = WebConfig(db_url=stage.db_url, host=host, port=port, rpc_url=url)

    def listening(address: str) -> None:
        console.note(f"the web app is at {address} (chain {url}); Ctrl-C stops it and the chain")
        console.note(
            f"to use a browser wallet: add the network {url} (chain id "
            f"{w3.eth.chain_id}) and import the dev mnemonic's account {1 + nodes}, an investor "
            f"({investor.address}), or account 1, node 1's operator ({operator.address}); "
            "the mnemonic is public: never send real money to these accounts"
        )
        console.out.print(address)

    serve_web(config, suite, on_listen=listening)


def _print_summary(summary: DemoSummary, json_output: bool) -> None:
    if json_output:
        console.print_json(summary.model_dump())
        return
    usdc = MOCK_USDC.format
    console.print_table(
        "Nodes (amounts in USDC, exact)",
        ["node", "region", "price per 1k inferences", "inferences", "gross", "of it channels",
         "to holders", "operator", "fee", "disputed"],
        [[n.node_id, n.region, usdc(n.price_per_1k), f"{n.inferences:,}", usdc(n.gross),
          usdc(n.channels) if n.channels else "", usdc(n.holders), usdc(n.operator),
          usdc(n.fee), usdc(n.disputed) if n.disputed else ""]
         for n in summary.nodes],
    )  # fmt: skip
    node_id, epoch = summary.disputed_report
    console.print_table(
        "Every base unit accounted for (USDC)",
        ["paid for reports", "into channels", "refunded", "claimed", "withdrawn",
         "customers withdrew", "in channels", "claimable", "unvested", "dust"],
        [[usdc(summary.paid_in), usdc(summary.channel_deposits), usdc(summary.refunded_to_payer),
          usdc(summary.claimed_by_investors), usdc(summary.withdrawn_by_operators_and_treasury),
          usdc(summary.withdrawn_by_customers), usdc(summary.still_in_channels),
          usdc(summary.still_claimable), usdc(summary.still_unvested),
          f"{summary.dust} base units"]],
    )  # fmt: skip
    console.out.print(
        f"{summary.reports_settled} signed reports settled ({summary.live_reports} by the live "
        f"nodes' agents, the rest in {summary.settle_transactions} payer transactions); "
        f"customers paid {usdc(summary.channel_redeemed)} through channels; "
        f"node {node_id} epoch {epoch} disputed and refunded; "
        f"{summary.investors} investors claimed. Reports: {', '.join(summary.reports_written)}"
    )
    capital = [
        f"an offering raised {usdc(summary.offering_raised)}",
        f"another missed its soft cap and refunded {usdc(summary.offering_refunded)} in full",
    ]
    if summary.traded:
        capital.append(
            f"{summary.traded // 10**18:,} shares traded through signed orders for "
            f"{usdc(summary.trade_volume)}"
        )
    if summary.basket:
        capital.append(
            f"basket {summary.basket} harvested {usdc(summary.basket_harvested)} for its holders"
        )
    console.out.print("Capital: " + "; ".join(capital) + ".")
    if summary.live_nodes:
        console.out.print(
            f"Node software: nodes {', '.join(map(str, summary.live_nodes))} served "
            f"{summary.live_requests:,} paid requests over HTTP through their gateways; their "
            f"agents metered them, signed and settled {summary.live_reports} reports and "
            f"redeemed the vouchers (the operators paid {usdc(summary.live_paid)} more)."
        )
