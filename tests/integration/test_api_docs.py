"""The services' API docs, opened through the gateway in a real headless Chromium whose
network ends at loopback: every operation rendered, and "Try it out" answering for real.

Nothing outside 127.0.0.1 can be reached: host names other than 127.0.0.1 do not resolve,
and every request Chromium would send elsewhere goes to a proxy of the test's own, which
refuses it and notes it (loopback never goes through a proxy). So a page that needed a
CDN would stay blank here, and one that tried to reach anything remote is caught.
"""

import json
import re
import shutil
import socketserver
import threading

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# ReDoc's sidebar shows Redocly's logo from their CDN and hides it when it cannot load:
# the CSP blocks it, on purpose. Nothing else may be blocked or fail.
REDOC_REMOTE_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class RefusingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy on loopback that refuses every request and keeps its first line."""

    daemon_threads = True

    def __init__(self):
        self.requests = []
        super().__init__(("127.0.0.1", 0), RefusingHandler)


class RefusingHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.server.requests.append(self.rfile.readline(1024).decode("latin-1").strip())
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def proxy():
    with RefusingProxy() as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()


@pytest.fixture(scope="module")
def browser(proxy, tmp_path_factory):
    """Debian's Chromium, headless, with no way out of loopback."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: apt-get install -y chromium "
                    "chromium-driver (gateway/install-system-packages.sh does it as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        # What Chromium needs on these machines: no sandbox as root, and none of its own
        # calls home (updates, sync, field trials), which would otherwise reach the proxy.
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1400,1000",
        f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    # The console (CSP blocks, failed loads, script errors) and each request the pages make.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # A driver path of our own: Selenium Manager, which would download one, never runs.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser):
    """The browser, its logs emptied before the test."""
    browser.get_log("browser")
    browser.get_log("performance")
    return browser


def operations(stack, http, service):
    """Every (METHOD, path) of the service's OpenAPI document, as the gateway serves it."""
    spec = http.get(f"{stack.url}/{service}/openapi.json").json()
    found = {(method.upper(), path) for path, item in spec["paths"].items()
             for method in item if method in METHODS}
    assert found, f"{service} documents no operation"
    return found


def remote_requests(browser, stack):
    """Each request the pages sent, or tried to send, to anywhere but the gateway."""
    events = (json.loads(entry["message"])["message"] for entry in browser.get_log("performance"))
    urls = [event["params"]["request"]["url"] for event in events
            if event["method"] == "Network.requestWillBeSent"]
    # data: and blob: are the page's own; chrome:// is the browser's first, empty tab.
    return [url for url in urls
            if url.split(":")[0] in {"http", "https", "ws", "wss"}
            and not url.startswith(f"{stack.url}/")]


def problems(browser):
    """What the console reported as errors: CSP blocks, failed loads, script errors."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def wait(browser, condition, timeout=30):
    return WebDriverWait(browser, timeout).until(condition)


def find(element, selector):
    return element.find_element(By.CSS_SELECTOR, selector)


def find_all(element, selector):
    return element.find_elements(By.CSS_SELECTOR, selector)


def operation_of(block):
    """The (METHOD, path) that one of Swagger UI's operation blocks shows."""
    return (find(block, ".opblock-summary-method").text,
            find(block, ".opblock-summary-path").get_attribute("data-path"))


def open_swagger_ui(browser, stack, service, expected):
    """Open the service's /docs; return the operations it rendered."""
    browser.get(f"{stack.url}/{service}/docs")
    wait(browser, lambda _: len(find_all(browser, ".opblock")) >= len(expected))
    return {operation_of(block) for block in find_all(browser, ".opblock")}


def try_it_out(browser, method, path, body=None):
    """Run one operation from Swagger UI; return the status and JSON body it shows."""
    block = next(block for block in find_all(browser, ".opblock")
                 if operation_of(block) == (method, path))
    find(block, ".opblock-summary").click()
    wait(browser, lambda _: find(block, ".try-out__btn")).click()
    if body is not None:
        editor = wait(browser, lambda _: find(block, "textarea.body-param__text"))
        editor.send_keys(Keys.CONTROL, "a")
        editor.send_keys(json.dumps(body))
    find(block, "button.execute").click()
    answer = wait(browser, lambda _: find(block, ".live-responses-table .response"))
    status = find(answer, ".response-col_status").text
    shown = find(answer, ".response-col_description pre").text
    return int(status), json.loads(shown)


@pytest.mark.parametrize("service", ["logger", "predictor"])
def test_swagger_ui_renders_every_operation_offline(stack, http, page, service):
    expected = operations(stack, http, service)

    assert open_swagger_ui(page, stack, service, expected) == expected
    assert problems(page) == []
    assert remote_requests(page, stack) == []


def test_try_it_out_on_predict_shows_the_real_prediction(stack, http, page):
    open_swagger_ui(page, stack, "predictor", operations(stack, http, "predictor"))
    body = {"input": "my cat purrs on the sofa"}

    status, shown = try_it_out(page, "POST", "/predict", body)

    assert status == 200
    real = http.post(f"{stack.url}/predict", json=body).json()
    assert shown == real
    assert problems(page) == []
    assert remote_requests(page, stack) == []


def test_try_it_out_on_process_logs_the_input_for_real(stack, http, page):
    open_swagger_ui(page, stack, "logger", operations(stack, http, "logger"))
    marker = "sent from Swagger UI in Chromium"

    status, shown = try_it_out(page, "POST", "/process", {"data": marker})

    assert status == 200
    assert shown["status"] == "Input logged successfully"
    logged = http.get(f"{stack.url}/logs", params={"limit": 50}).json()["records"]
    assert any(record["request_id"] == shown["request_id"] and record["data"] == marker
               for record in logged)
    assert problems(page) == []
    assert remote_requests(page, stack) == []


def test_redoc_renders_every_operation_offline(stack, http, page):
    expected = operations(stack, http, "logger")

    page.get(f"{stack.url}/logger/redoc")
    # ReDoc names each operation's section tag/<tag>/paths/<path as a JSON pointer>/<method>.
    sections = wait(page, lambda _: find_all(page, "[data-section-id*='/paths/']"))
    rendered = set()
    for section in sections:
        pointer, method = re.fullmatch(r".*/paths/([^/]+)/([a-z]+)",
                                       section.get_attribute("data-section-id")).groups()
        rendered.add((method.upper(), pointer.replace("~1", "/").replace("~0", "~")))

    assert rendered == expected
    assert [message for message in problems(page) if REDOC_REMOTE_LOGO not in message] == []
    assert remote_requests(page, stack) in ([], [REDOC_REMOTE_LOGO])

