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
        "id", "request_id", "created_at", "data", "forward_to_model",
        "outcome", "prediction", "latency_ms",
    }


def test_logs_of_an_empty_database(client):
    assert client.get("/logs").get_json() == {"records": [], "next_before_id": None}
