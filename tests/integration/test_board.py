"""The board in a real browser: Debian's Chromium driven by Playwright (pointed at the system browser; nothing is
downloaded) against the whole pipeline as `autodeploy up` runs it, fed by the demo's webhooks. axe-core (from npm,
vendored in tests/fixtures/axe-core) checks each page. With AUTODEPLOY_SCREENSHOTS=<dir> the test leaves its
screenshots there (docs/images/ holds the ones the docs show)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.config import REPO_ROOT
from streams.demo.deliveries import History, Secrets
from streams.demo.play import http_post
from streams.demo.scenario import build
from tests.cluster_fixture import ClusterHandle
from tests.support.brokers import SelectedBroker
from tests.support.demo_monitoring import demo_monitoring
from tests.support.fixtures import FIXTURES
from tests.support.kafka_io import consume
from tests.support.pipeline import running_pipeline
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET

pytestmark = pytest.mark.timeout(900)

TTL_S = 30  # the policy's readiness TTL here: short, so that a commit expires within the test
AXE = FIXTURES / "axe-core" / "axe.min.js"
# Rows put in the timeline are stamped when they arrive, so that the test can say how long after the decision.
STAMP_ROWS = """() => {
  window.__arrived = {};
  window.__loadedOnce = true;
  new MutationObserver(records => {
    for (const record of records) for (const node of record.addedNodes)
      if (node.id && node.id.startsWith("entry-")) window.__arrived[node.id.slice(6)] = Date.now();
  }).observe(document.getElementById("timeline-rows"), {childList: true});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not found (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only these tests need it

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def _axe(page: Any) -> list[str]:
    """The serious and critical violations of the page, as `rule: target` lines."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await axe.run()).violations")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def _screenshot(page: Any, name: str, tmp_path: Path) -> None:
    directory = Path(os.environ.get("AUTODEPLOY_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / name), full_page=True)


def test_the_board_shows_the_demo_live_and_explains_each_commit(
    browser: Any,
    kafka_broker: SelectedBroker,
    k8s_cluster: ClusterHandle,
    namespace: str,
    unique: str,
    tmp_path: Path,
) -> None:
    policy = (REPO_ROOT / "autodeploy.yaml").read_text().replace("namespace: shop,", f"namespace: {namespace},")
    policy = policy.replace("readiness_ttl: 2h", f"readiness_ttl: {TTL_S}s")
    with (
        demo_monitoring(k8s_cluster.kubeconfig, tmp_path / "prometheus") as (app, monitoring),
        running_pipeline(
            kafka_broker, k8s_cluster.kubeconfig, namespace, unique, tmp_path, policy=policy, env=monitoring, board=True
        ) as pipe,
    ):
        # The board's Content-Security-Policy allows its own script only: axe-core comes in past it.
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
        grid = context.new_page()
        grid.goto(pipe.board_url)
        text = grid.inner_text("main")
        assert "No decisions yet" in text
        assert [grid.inner_text(f"tbody tr:nth-child({i}) th") for i in (1, 2)] == ["shop", "shop-worker"]
        assert grid.inner_text("thead").split() == ["Service", "staging", "production"]
        assert _axe(grid) == []
        grid.evaluate("() => { window.__loadedOnce = true; }")
        timeline = context.new_page()
        timeline.goto(f"{pipe.board_url}/timeline")
        timeline.wait_for_function("document.getElementById('live-status').textContent.includes('connected')")
        timeline.evaluate(STAMP_ROWS)
        grid.wait_for_function("document.getElementById('live-status').textContent.includes('connected')")

        pipe.play_demo(unique, app.address)
        scenario = build(pipe.policies, Secrets(GITHUB_SECRET, CIRCLECI_SECRET), unique, bad_commit=True)
        c, d, e = (scenario.commits[name] for name in "CDE")

        # Every decision and outcome arrived on the open pages, without a reload.
        # When each decision entered the log (LogAppendTime) against when its row appeared on the open page.
        logged = consume(kafka_broker, pipe.catalog.topic("deploy.readiness").name, 14)
        appended = {json.loads(m.value())["id"]: m.timestamp()[1] / 1000 for m in logged}
        timeline.wait_for_function("Object.keys(window.__arrived).length >= 26", timeout=15_000)
        assert timeline.evaluate("window.__loadedOnce") is True and grid.evaluate("window.__loadedOnce") is True
        arrived = timeline.evaluate("window.__arrived")
        delays = sorted(arrived[i] / 1000 - at for i, at in appended.items() if i in arrived)
        assert len(delays) == 14
        print(
            f"board: decision -> row on the open page: p50 {delays[7]:.3f} s, max {delays[-1]:.3f} s", file=sys.stderr
        )
        production = grid.inner_text("#cell-shop-production")
        assert "running" in production and d[:7] in production
        staging = grid.inner_text("#cell-shop-staging")
        assert "rolled back" in staging and d[:7] in staging and f"rolled back {e[:7]}" in staging
        assert e[:7] in grid.inner_text("#cell-shop-worker-production")
        _screenshot(grid, "board-grid.png", tmp_path)
        assert _axe(timeline) == []

        # A superseded commit's page names the commit that superseded it, and links to it.
        page = context.new_page()
        page.goto(f"{pipe.board_url}/commits/acme/shop/{c[:7]}")  # a short SHA is taken to the stable URL
        assert page.url.endswith(f"/commits/acme/shop/{c}")
        assert d in page.inner_text("main") and "superseded by" in page.inner_text("main")
        chain = page.inner_text("#chain + ol")
        assert "GitHub push" in chain and "verified: key tests" in chain
        assert _axe(page) == []
        page.click(f"main table a[href='/commits/acme/shop/{d}']")
        page.wait_for_url(f"**/commits/acme/shop/{d}")
        assert d[:7] in page.inner_text("h1")
        _screenshot(page, "board-commit.png", tmp_path)

        # A commit that fails a check waits (the worker says for what), then expires; its page names what it lacked.
        x = "f" * 8 + unique.ljust(32, "0")
        history = History(Secrets(GITHUB_SECRET, CIRCLECI_SECRET), repository="acme/shop", branch="main")
        history.push(e, x, label="push X")
        history.actions(x, "failure", name="lint", label="lint failed for X")
        post = http_post(pipe.url)
        for delivery in history.deliveries:
            assert post(delivery)[0] == 200
        grid.wait_for_function(
            f"document.getElementById('cell-shop-staging').textContent.includes('{x[:7]}')"
            " && document.getElementById('cell-shop-staging').textContent.includes('(latest: failure)')",
            timeout=20_000,
        )
        assert "missing check circleci:build-test (latest: none)" in grid.inner_text("#cell-shop-staging")
        page.goto(f"{pipe.board_url}/commits/acme/shop/{x}")
        assert "missing" in page.inner_text("main")
        deadline = time.monotonic() + TTL_S + 60
        while "expired" not in page.inner_text("main") and time.monotonic() < deadline:
            time.sleep(2)  # the page reloads its main part itself when the decision arrives
        where = page.inner_text("main")
        assert "expired" in where and "waited for" in where and "check github_actions:lint (latest: failure)" in where
        assert _axe(page) == []

        # From the keyboard: the skip link first, then into the content.
        grid.reload()
        grid.keyboard.press("Tab")
        assert grid.evaluate("document.activeElement.textContent") == "Skip to content"
        grid.keyboard.press("Enter")
        assert grid.evaluate("document.activeElement.id") == "main"
        grid.keyboard.press("Tab")
        assert grid.evaluate("document.activeElement.closest('main') !== null")
