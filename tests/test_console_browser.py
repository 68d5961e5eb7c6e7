"""The web console in headless Chromium, as two people use it: the target's owner makes a link-token,
the source's owner connects with it and adds a host, and the target's owner registers a destination,
creates a migration and cancels it while it runs (its host stops writing, the destination is free
again), creates another that replaces what the first left in the destination, watches it become ready,
dismisses the cutover's confirmation once (the page goes on updating), cuts over, sees it COMPLETE, and
finds both migrations on the organization's page. The migration page names the migration by its source
and destination and charts the lag, with axes, from the start. A screenshot of every page is saved in the
test's directory; the browser's console shows no error (the pages' Content-Security-Policy included) and
no request leaves the machine."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page

from tests.browser import Visit, browser, open_page
from tests.engine_support import Writer, seed
from tests.nx import NxServer
from tests.support import EMBEDDED_AGENT_HOSTNAME, TARGET, OrgCredentials, ServerProcess, wait_for

WAIT_MS = 90_000
HOVER = re.compile(r"^\d\d:\d\d:\d\d UTC · lag \d+\.\d\d s$")  # a sample's value, as the browser shows it on hover


def assert_charted_with_axes(page: Page) -> None:
    """The lag chart is there, with times along its bottom and seconds of lag up its side."""
    times = page.locator("svg.chart .time-axis text").all_text_contents()
    lags = page.locator("svg.chart .lag-axis text").all_text_contents()
    assert len(times) >= 2 and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", label) for label in times), times
    assert lags[0] == "0 s" and len(lags) >= 2 and all(label.endswith(" s") for label in lags), lags


def sign_in(page: Page, base_url: str, credentials: OrgCredentials, screenshot: Path | None = None) -> None:
    page.goto(f"{base_url}/console/")
    assert "/console/sign-in" in page.url  # no session yet: the sign-in page
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    page.fill("input[name=publicKey]", credentials.public_key)
    page.fill("input[name=privateKey]", credentials.private_key)
    page.click("#sign-in button")
    page.wait_for_url(f"**/console/orgs/{credentials.org_id}")


def test_a_migration_through_the_console_in_a_browser(tmp_path: Path) -> None:
    screens = tmp_path / "screens"
    source_db, destination_db = NxServer(tmp_path / "src").start(), NxServer(tmp_path / "dst").start()
    with source_db.client() as client:
        seed(client, total=1200)
    api = ServerProcess(tmp_path / "api", sync_seconds=1.0, embedded_agent=True,
                        extra_env={"LIVEMIGRATE_AGENT_CAPTURE": "collection"})  # nx-27017: no deployment-wide stream
    source, target = api.admin_create_org("source", "Cloud Manager org"), api.admin_create_org("target", "Atlas org")
    api.start()
    pages: list[Visit] = []
    try:
        with browser() as launched:
            owner, operator = open_page(launched, api.base_url), open_page(launched, api.base_url)
            pages += [owner, operator]
            atlas, cloud = owner.page, operator.page

            sign_in(atlas, api.base_url, target, screens / "0-sign-in.png")
            atlas.fill("#create-link-token input[name=accessListIps]", "127.0.0.1")
            atlas.click("#create-link-token button")
            token = atlas.input_value("#link-token")
            assert token.startswith("lmlt1.")
            atlas.screenshot(path=str(screens / "1-target-org-link-token.png"), full_page=True)

            sign_in(cloud, api.base_url, source)
            cloud.fill("#connect textarea[name=linkToken]", token)
            cloud.click("#connect button")
            cloud.wait_for_selector("#link-status:text('SYNCED')")
            cloud.screenshot(path=str(screens / "2-source-org-linked.png"), full_page=True)
            cloud.fill("#create-project input[name=name]", "shop")
            cloud.click("#create-project button")
            cloud.wait_for_url("**/console/groups/*")
            cloud.fill("#add-host input[name=hostname]", "127.0.0.1")
            cloud.fill("#add-host input[name=port]", str(source_db.port))
            cloud.click("#add-host button")
            assert f"deployment 127.0.0.1:{source_db.port}" in cloud.inner_text(".notice")  # the probe's answer
            cloud.wait_for_selector(f"#migration-hosts:has-text('{EMBEDDED_AGENT_HOSTNAME}')", timeout=WAIT_MS)
            cloud.screenshot(path=str(screens / "3-source-project-host.png"), full_page=True)

            atlas.goto(f"{api.base_url}/console/orgs/{target.org_id}")
            atlas.wait_for_selector("#available:has-text('shop')", timeout=WAIT_MS)  # the inventory, pushed live
            atlas.fill("#create-project input[name=name]", "atlas-shop")
            atlas.click("#create-project button")
            atlas.wait_for_url("**/console/groups/*")
            atlas.fill("#add-cluster input[name=name]", "Destination")
            atlas.fill("#add-cluster input[name=connectionString]", destination_db.uri)
            atlas.click("#add-cluster button")
            atlas.select_option("#create-migration select[name=migrationHost]", EMBEDDED_AGENT_HOSTNAME)
            atlas.click("#create-migration button:has-text('Validate only')")  # the migration host's pre-flight
            atlas.wait_for_selector("#validations .badge.SUCCESS", timeout=WAIT_MS)
            assert "12 namespace(s), 1,200 document(s): the copy takes " in atlas.inner_text("#validations .preflight")
            source_name = f"shop / 127.0.0.1:{source_db.port}"  # the deployment's name: its host, for a standalone
            assert atlas.inner_text("#validations td.source") == source_name
            assert atlas.inner_text("#validations td.destination") == "atlas-shop / Destination"
            atlas.select_option("#create-migration select[name=migrationHost]", EMBEDDED_AGENT_HOSTNAME)
            atlas.screenshot(path=str(screens / "4-target-project.png"), full_page=True)
            project_page = urlsplit(atlas.url).path  # /console/groups/{id}

            # A first migration, cancelled while its host writes to the destination.
            atlas.click("#create-migration button:has-text('Create the migration')")
            atlas.wait_for_url("**/migrations/*")
            cancelled_page = urlsplit(atlas.url).path  # /console/groups/{id}/migrations/{id}
            cancelled_id = cancelled_page.rsplit("/", 1)[1]
            # Named as a person names it, and charted from its start: the copy has a band of its own.
            assert atlas.inner_text("#migration-title") == f"{source_name} → atlas-shop / Destination"
            assert re.match(r"Started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · migration " + cancelled_id,
                            atlas.inner_text("#migration-facts"))
            assert_charted_with_axes(atlas)
            atlas.screenshot(path=str(screens / "5a-migration-started.png"), full_page=True)
            migration_api = f"{TARGET}/groups/{project_page.rsplit('/', 1)[1]}/liveMigrations/{cancelled_id}"
            with api.client(target) as client:  # asked here: quicker than the page's own refresh
                assert wait_for(lambda: client.get(migration_api).json()["copiedDocuments"] > 0, timeout=WAIT_MS / 1000)
                atlas.reload()
                asked: list[str] = []
                atlas.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
                atlas.click("#cancel-migration button")
                assert asked and asked[0].startswith("Cancel this migration? It ends FAILED and is never cut over")
                atlas.wait_for_selector("#migration-status:text('FAILED')")
                assert "Cancelled: its migration hosts stop writing" in atlas.inner_text(".notice")
                assert f"Cancelled by API key {target.public_key} at " in atlas.inner_text("#migration-cancelled")
                assert atlas.locator("#cancel-migration").count() == 0  # nothing left to cancel
                assert wait_for(lambda: client.get(migration_api).json()["hostsStoppedAt"] is not None, timeout=10)
            # The host says so once the target has its report (and hostsStoppedAt): a moment after, at most.
            assert wait_for(lambda: f"job {cancelled_id}: cancelled; this host has stopped writing to its destination"
                            in api.log_text(), timeout=10), api.log_text()[-2000:]
            atlas.reload()
            assert "its migration hosts stopped writing at " in atlas.inner_text("#migration-cancelled")
            atlas.screenshot(path=str(screens / "5-migration-cancelled.png"), full_page=True)
            # The same form posted again, as a page that still showed the button would: 409, and the page says why.
            csrf = atlas.get_attribute("header input[name=csrf]", "value") or ""
            again = atlas.request.post(f"{api.base_url}{cancelled_page}/cancel", form={"csrf": csrf}, max_redirects=0)
            assert again.status == 409, again.text()
            assert (f'<p class="error" role="alert">Live migration {cancelled_id} is FAILED: there is nothing to '
                    'cancel.</p>') in again.text()

            # The next migration into the same destination must replace what the cancelled one copied there.
            atlas.goto(f"{api.base_url}{project_page}")
            atlas.select_option("#create-migration select[name=migrationHost]", EMBEDDED_AGENT_HOSTNAME)
            atlas.click("#create-migration button:has-text('Create the migration')")
            assert "Destination cluster 'Destination' is not empty" in atlas.inner_text(".error")
            assert owner.console_errors == ["Failed to load resource: the server responded with a status of "
                                            "400 (Bad Request)"], owner.console_errors  # the refusal's own
            owner.console_errors.clear()
            atlas.select_option("#create-migration select[name=migrationHost]", EMBEDDED_AGENT_HOSTNAME)
            atlas.select_option("#create-migration select[name=changeCapture]", "COLLECTION")
            atlas.check("#create-migration input[name=dropDestinationData]")
            writer = Writer(source_db.client(), per_second=40)  # the application, writing meanwhile
            writer.start()
            try:
                atlas.click("#create-migration button:has-text('Create the migration')")
                atlas.wait_for_url("**/migrations/*")
                assert atlas.inner_text("#change-capture") == "COLLECTION"
                atlas.wait_for_selector("#cutover button", timeout=WAIT_MS)  # ready: the page updated itself
                # The lag, charted (attached, not "visible": a line flat at 0 s has no height to see).
                atlas.wait_for_selector("svg.chart polyline", state="attached", timeout=WAIT_MS)
                assert_charted_with_axes(atlas)
                hovered = atlas.locator("svg.chart circle.sample title").all_text_contents()
                assert hovered and all(HOVER.match(title) for title in hovered), hovered
                assert re.fullmatch(r"[\d,]+ documents/s", atlas.inner_text("#copy-rate"))
                assert atlas.locator("progress").count() == 12
                atlas.screenshot(path=str(screens / "6-migration-ready.png"), full_page=True)
                # A cutover's confirmation, dismissed: the clicked button keeps the focus, and the page must
                # go on updating all the same.
                atlas.once("dialog", lambda dialog: dialog.dismiss())
                atlas.click("#cutover button")
                dismissed = time.monotonic()
                assert atlas.evaluate("document.activeElement.textContent") == "Cut over…"
            finally:
                writer.finish()  # "stop the application's writes to the source first"
            assert sum(writer.counts.values()) > 0
            # Meanwhile the source's owner cannot disconnect, and the page says why, of the link.
            cloud.goto(f"{api.base_url}/console/orgs/{source.org_id}")
            cloud.once("dialog", lambda dialog: dialog.accept())  # "Disconnect this organization …?"
            cloud.click("#link button.danger")
            refusal = cloud.inner_text(".error")
            assert refusal.startswith("The link cannot be removed while a migration of shop is running"), refusal
            assert "cannot be deleted" not in refusal and "Organization" not in refusal
            cloud.screenshot(path=str(screens / "7-source-disconnect-refused.png"), full_page=True)
            # Ten seconds after the dismissed confirmation, the migration page still updates itself.
            atlas.wait_for_timeout(max(0.0, 10 - (time.monotonic() - dismissed)) * 1000)
            atlas.evaluate("document.getElementById('live').dataset.seen = 'before'")
            atlas.wait_for_selector("#live:not([data-seen])", state="attached", timeout=5000)  # replaced: fresh
            atlas.screenshot(path=str(screens / "6b-migration-still-updating.png"), full_page=True)
            # The refusal's own status, which Chromium logs for any 4xx page, and nothing else.
            assert operator.console_errors == ["Failed to load resource: the server responded with a status of "
                                               "409 (Conflict)"], operator.console_errors
            operator.console_errors.clear()
            atlas.once("dialog", lambda dialog: dialog.accept())  # "Cut over now?"
            atlas.click("#cutover button")
            if atlas.inner_text("#migration-status") == "WORKING":  # the drain: said in a person's words
                said = atlas.inner_text("#cutover-under-way")
                assert said.startswith("Cutover under way since ") and "MongoDB" in said, said
            atlas.wait_for_selector("#migration-status:text('COMPLETE')", timeout=WAIT_MS)
            assert atlas.locator(".badge.VERIFIED").count() == 12
            # Once COMPLETE, nothing is left of the cutover's notice, nor any of the API's field names.
            assert atlas.locator("#cutover-under-way").count() == 0 and atlas.locator(".notice").count() == 0
            shown = atlas.inner_text("body")
            assert "setUserWriteBlockMode" not in shown and "writesAfterCutoverBegan" not in shown
            assert_charted_with_axes(atlas)
            atlas.screenshot(path=str(screens / "8-migration-complete.png"), full_page=True)
            completed_page = urlsplit(atlas.url).path
            # The organization's page lists every migration of its projects, each leading to its page.
            atlas.goto(f"{api.base_url}/console/orgs/{target.org_id}")
            rows = atlas.locator("#org-migrations tbody tr")
            assert rows.count() == 2
            assert [rows.nth(index).locator(".badge").inner_text() for index in range(2)] == ["COMPLETE", "FAILED"]
            assert all(source_name in text and "atlas-shop / Destination" in text for text in rows.all_inner_texts())
            atlas.screenshot(path=str(screens / "9-target-org-migrations.png"), full_page=True)
            rows.nth(0).locator("a").click()
            atlas.wait_for_url(f"**{completed_page}")
            for visit in pages:
                assert visit.console_errors == [] and visit.refused == [], (visit.console_errors, visit.refused)
    finally:
        api.stop()
        source_db.stop()
        destination_db.stop()
