"""The web view in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium,
installed by scripts/prepare; nothing downloaded) against the view served on 127.0.0.1 over
a store the worker filled, on SQLite and on PostgreSQL. The charts draw the store's numbers,
every chart paints pixels, a click on an organization narrows the list, a ticket opens from
it, a hostile subject is text, nothing is loaded from anywhere but the view itself, and the
Content-Security-Policy is never violated."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from testkit.web import STORM, serving, store_rows, web_store

CHROMIUM = "/usr/bin/chromium"
CHARTS = ("alerts-per-day", "noisiest-devices", "noisiest-organizations", "time-to-clear",
          "storms")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The store on each engine in turn: an SQLite file, then a database of its own on the
    session's PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield None
        return
    with request.getfixturevalue("postgres").scratch_database() as url:
        yield url


@pytest.fixture(scope="module")
def store(tmp_path_factory, database_url):
    return web_store(tmp_path_factory.mktemp("browser"), database_url)


@pytest.fixture(scope="module")
def url(store):
    with serving(store.url) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, url):
    """A page that records every request it makes and every console error (a CSP violation
    is one)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    assert page.requests, "the page made no request at all"
    outside = [u for u in page.requests if not u.startswith(url + "/")]
    assert outside == [], "requests that left the view"
    assert page.errors == [], page.errors
    context.close()


def charts_drawn(page, url) -> None:
    page.goto(f"{url}/charts")
    # (wait_for_function would evaluate a string, which the view's policy forbids)
    for name in CHARTS:
        page.locator(f'canvas[data-chart="{name}"][data-drawn="true"]').wait_for(timeout=10_000)


def store_count(store, query: str, *params) -> int:
    ((n,),) = store_rows(store, query, *params)
    return n


def test_the_charts_draw_the_stores_numbers(page, url, store):
    charts_drawn(page, url)
    per_day = page.evaluate("""() => { const c = window.charts['alerts-per-day'];
        return {labels: c.data.labels, sets: c.data.datasets.map(d => [d.label, d.data])}; }""")
    drawn = sum(sum(data) for _, data in per_day["sets"])
    assert drawn == store_count(store, "SELECT count(*) FROM processed_message WHERE outcome IN "
                                       "('created', 'appended', 'completed') AND created >= ?",
                                per_day["labels"][0])
    by_org = {label: sum(data) for label, data in per_day["sets"]}
    for name, n in by_org.items():
        assert n == store_count(store, """SELECT count(*) FROM processed_message m
            JOIN ticket t ON t.id = m.ticket_id JOIN organization o ON o.id = t.organization_id
            WHERE o.name = ? AND m.outcome IN ('created', 'appended', 'completed')
            AND m.created >= ?""", name, per_day["labels"][0])
    orgs = page.evaluate("""() => { const c = window.charts['noisiest-organizations'];
        return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]])); }""")
    assert orgs == {"Client Three": STORM + 2, "Client One": 5, "Client Two": 4}
    storms = page.evaluate("() => window.charts.storms.data.datasets[0].data")
    assert max(storms) == STORM + 2 and storms[-1] == STORM + 2
    clear = page.evaluate("() => window.charts['time-to-clear'].data.datasets[0].data")
    assert clear == [3, 6]  # the medians
    # and the same numbers as the JSON endpoint
    with urllib.request.urlopen(f"{url}/charts/noisiest.json") as response:
        assert json.loads(response.read())["organizations"] == [
            {"name": k, "alerts": v} for k, v in orgs.items()]


def test_every_chart_paints_pixels(page, url):
    charts_drawn(page, url)
    for name in CHARTS:
        painted = page.evaluate("""(name) => {
            const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width,
                                                                canvas.height).data;
            let coloured = 0;
            for (let i = 0; i < pixels.length; i += 4) {
                const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
                // a bar's or point's colour: neither transparent nor a shade of grey (text, grid)
                if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
            }
            return coloured; }""", name)
        assert painted > 200, name


def test_a_click_on_an_organization_narrows_the_table(page, url):
    page.goto(f"{url}/")
    everything = page.locator("#tickets a.ticket").count()
    page.locator("#tickets a.organization", has_text="Client One").first.click()
    page.wait_for_url("**/?organization=*")
    rows = page.locator("#tickets tbody tr")
    assert 0 < rows.count() < everything
    organizations = set(page.locator("#tickets a.organization").all_inner_texts())
    assert organizations == {"Client One"}
    assert page.locator("#filter-organization option:checked").inner_text() == "Client One"
    # and with the select: Client Three
    page.select_option("#filter-organization", label="Client Three")
    page.locator("form.filters button").click()
    page.wait_for_url("**organization=*")
    assert set(page.locator("#tickets a.organization").all_inner_texts()) == {"Client Three"}


def test_a_ticket_opens_from_the_list(page, url):
    page.goto(f"{url}/")
    link = page.locator("#tickets a.ticket").first
    number = link.inner_text()
    link.click()
    page.wait_for_url(f"**/tickets/{number}")
    assert page.locator("h1").inner_text().startswith(number)
    assert page.locator("#mails tbody tr").count() >= 1


def test_a_hostile_subject_renders_as_text(page, url, store):
    page.goto(f"{url}/")
    cell = page.locator("#tickets td", has_text="onerror")
    assert cell.count() == 1
    assert cell.inner_text().startswith("<img src=x onerror=")
    assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0
    assert page.title() != "owned"
    cell.locator("xpath=..").locator("a.ticket").click()
    page.wait_for_url("**/tickets/*")
    assert page.locator("#title").inner_text().startswith("<img src=x")
    assert page.locator("main img").count() == 0 and page.title() != "owned"
