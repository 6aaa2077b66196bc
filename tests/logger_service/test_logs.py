import pytest


def post_inputs(client, count):
    return [
        client.post("/process", json={"data": f"input {n}"}).get_json()["request_id"]
        for n in range(count)
    ]


def test_logs_pages_newest_first(client):
    request_ids = post_inputs(client, 5)

    first = client.get("/logs?limit=2").get_json()
    second = client.get(f"/logs?limit=2&before_id={first['next_before_id']}").get_json()
    last = client.get(f"/logs?limit=2&before_id={second['next_before_id']}").get_json()

    pages = [first["records"], second["records"], last["records"]]
    assert [[r["data"] for r in page] for page in pages] == [
        ["input 4", "input 3"],
        ["input 2", "input 1"],
        ["input 0"],
    ]
    assert [r["request_id"] for page in pages for r in page] == request_ids[::-1]
    assert last["next_before_id"] is None


def test_logs_default_page_and_record_shape(client):
    post_inputs(client, 3)

    body = client.get("/logs").get_json()

    assert body["next_before_id"] is None  # 3 records fit in the default page of 50
    assert len(body["records"]) == 3
    assert set(body["records"][0]) == {
        "id", "request_id", "client_id", "trace_id", "created_at", "data", "forward_to_model",
        "outcome", "prediction", "latency_ms",
    }
    assert body["records"][0]["client_id"] is None  # no gateway named a client
    assert body["records"][0]["trace_id"] is None  # nor a trace


def test_logs_of_an_empty_database(client):
    assert client.get("/logs").get_json() == {"records": [], "next_before_id": None}


EMOJI = "🐱🐶🐟🐦🐹"  # 4 bytes each in UTF-8


def emoji_input(n, length=10_000):
    """A distinct input of length characters, all emoji but its number."""
    tag = f"#{n} "
    return tag + (EMOJI * length)[: length - len(tag)]


def page_through(client, limit):
    """Every page of /logs at limit, following next_before_id; the pages' answers."""
    pages, query = [], f"/logs?limit={limit}"
    while True:
        response = client.get(query)
        assert response.status_code == 200
        pages.append(response)
        next_before_id = response.get_json()["next_before_id"]
        if next_before_id is None:
            return pages
        query = f"/logs?limit={limit}&before_id={next_before_id}"


@pytest.mark.parametrize("budget", [200_000, 2 * 1024 * 1024])
def test_a_page_of_large_emoji_inputs_stays_within_the_byte_budget_and_paging_loses_none(
        make_app, budget):
    client = make_app(LOGS_MAX_PAGE_BYTES=budget).test_client()
    sent = [emoji_input(n) for n in range(60)]  # 40 KB each: 2.4 MB in all
    for text in sent:
        assert client.post("/process", json={"data": text}).status_code == 200

    pages = page_through(client, limit=500)

    assert len(pages) > 1  # the byte budget, not the 500 rows, cut the first page
    assert all(len(page.data) <= budget for page in pages)
    received = [r["data"] for page in pages for r in page.get_json()["records"]]
    assert received == sent[::-1]  # every record, exactly once, newest first


def test_a_record_larger_than_the_budget_is_still_served_one_per_page(make_app):
    client = make_app(LOGS_MAX_PAGE_BYTES=1000).test_client()
    sent = [emoji_input(n, length=2_000) for n in range(3)]
    for text in sent:
        client.post("/process", json={"data": text})

    pages = page_through(client, limit=500)

    assert [[r["data"] for r in page.get_json()["records"]] for page in pages] == [
        [sent[2]], [sent[1]], [sent[0]],
    ]


def test_small_records_fill_a_page_up_to_its_row_limit(client):
    post_inputs(client, 7)

    body = client.get("/logs?limit=5").get_json()

    assert len(body["records"]) == 5
    assert body["next_before_id"] == body["records"][-1]["id"]


def test_logs_carry_text_as_utf8_not_escapes(client):
    client.post("/process", json={"data": "a 🐱 and a café"})

    response = client.get("/logs")

    assert response.headers["Content-Type"] == "application/json"  # JSON's default: UTF-8
    assert "a 🐱 and a café".encode() in response.data
    assert b"\\u" not in response.data


def test_each_record_carries_the_client_the_gateway_named(client):
    client.post("/process", json={"data": "from alice"}, headers={"X-Client-Id": "alice"})
    client.post("/process", json={"data": "from no one"})
    client.post("/process", json={"data": "from a bad id"}, headers={"X-Client-Id": "a b"})
    client.post("/process", json={"data": "from a long id"}, headers={"X-Client-Id": "a" * 65})

    records = client.get("/logs").get_json()["records"]

    assert [(r["data"], r["client_id"]) for r in records] == [
        ("from a long id", None), ("from a bad id", None),
        ("from no one", None), ("from alice", "alice"),
    ]
