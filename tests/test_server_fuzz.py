"""Every route of a real ``napari-vlsm serve`` with inputs made by hypothesis: no input is a 500.

A user's mistake is a 4xx naming it (422 for a bad value, 404, 409, 413) or a 503 when busy; a 500
would mean a value slipped past the core's rules into the store or the trainer. Bounded: a few
dozen examples per route against one tiny-model server, no shrinking deadline.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_vlsm.client import encode_array
from napari_vlsm.server.process import ServerProcess

EXAMPLES = 30
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("fuzz"), "--max-upload-mb", "1", "--max-array-mb", "4",
                       "--max-side", "512", "--read-timeout", "5") as proc:
        yield proc


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60,
                      trust_env=False) as c:
        yield c


texts = st.text(max_size=40)
names = st.one_of(st.sampled_from(["p", "fz", "..", "a/b", "", "x" * 70, "adapter-x.safetensors", "latest"]), texts)
numbers = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), st.none())
scalars = st.one_of(numbers, texts, st.booleans())
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(texts, inner, max_size=4)), max_leaves=8)
dtypes = st.sampled_from(["uint8", "float32", "bool", "int16", "float64", "complex64", "int64"])
shapes = st.lists(st.integers(0, 24), min_size=0, max_size=5).map(tuple)


@st.composite
def arrays(draw):
    dtype, shape = draw(dtypes), draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 100)))
    return (rng.random(shape) * 255).astype(dtype)


@st.composite
def bodies(draw):
    kind = draw(st.sampled_from(["array", "array", "bytes", "cut"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    data = encode_array(draw(arrays()))
    return data[: draw(st.integers(0, len(data)))] if kind == "cut" else data


def b64_or_junk(draw):
    from base64 import b64encode

    return draw(st.one_of(bodies().map(lambda b: b64encode(b).decode()), texts, json_values))


def query(draw, keys: dict) -> list[tuple[str, str]]:
    out = []
    for key, strategy in keys.items():
        for value in draw(st.lists(strategy, max_size=2)):
            out.append((key, str(value).lower() if isinstance(value, bool) else str(value)))
    return out


PREDICT_KEYS = {"prompt": texts, "threshold": numbers, "output": st.sampled_from(["mask", "probability", "x"]),
                "project": names, "adapter": names, "batch_size": numbers, "window_lo": numbers,
                "window_hi": numbers, "rgb": st.one_of(st.booleans(), texts), "index": numbers}


def _check(response: httpx.Response, what) -> None:
    assert response.status_code < 500 or response.status_code == 503, (what, response.status_code,
                                                                         response.text[:400])
    if response.status_code >= 400:
        assert response.json()["detail"], what


@FUZZ
@given(st.data())
def test_predict_and_sessions(http, data):
    draw = data.draw
    params = query(draw, PREDICT_KEYS)
    route = draw(st.sampled_from(["/v1/predict", "/v1/sessions", "session-predict", "session-delete"]))
    if route.startswith("session-"):
        opened = http.post("/v1/sessions", content=encode_array(np.zeros((2, 16, 16), np.uint8)))
        _check(opened, "open")
        sid = opened.json()["id"] if opened.status_code == 201 else draw(texts)
        sid = draw(st.one_of(st.just(sid), texts))
        if route == "session-predict":
            r = http.post(f"/v1/sessions/{quote(sid, safe='')}/predict", params=params)
        else:
            r = http.delete(f"/v1/sessions/{quote(sid, safe='')}")
        _check(r, (route, params))
        if opened.status_code == 201:
            http.delete(f"/v1/sessions/{opened.json()['id']}")
        return
    r = http.post(route, params=params, content=draw(bodies()), headers={"Content-Type": "application/x-npy+zstd"})
    _check(r, (route, params))
    if route == "/v1/sessions" and r.status_code == 201:
        http.delete(f"/v1/sessions/{r.json()['id']}")


def _valid_correction() -> dict:
    from base64 import b64encode

    image = (np.random.default_rng(0).random((24, 20)) * 255).astype(np.uint8)
    mask = np.zeros((24, 20), bool)
    mask[4:12, 3:15] = True
    return {"image": b64encode(encode_array(image)).decode(), "mask": b64encode(encode_array(mask)).decode(),
            "prompts": ["liver"], "proposal": None, "source": "ct", "slice_index": 0, "window": [0.0, 255.0]}


CORRECTION_FIELDS = {
    "image": st.deferred(lambda: st.builds(lambda b: __import__("base64").b64encode(b).decode(), bodies())),
    "mask": st.deferred(lambda: st.builds(lambda b: __import__("base64").b64encode(b).decode(), bodies())),
    "prompts": st.one_of(st.lists(texts, max_size=3), st.lists(st.text(min_size=70, max_size=3000), max_size=2)),
    "proposal": st.one_of(st.none(), texts),
    "source": st.one_of(texts, st.text(min_size=1000, max_size=3000)),
    "slice_index": st.one_of(st.integers(-10**6, 10**6), st.lists(st.integers(-5, 5), max_size=3)),
    "window": st.lists(numbers, max_size=3),
}
FUZZ_PROJECT = "fz-corrections"  # the finetune fuzz never names it: no job starts on its corrections


@FUZZ
@given(st.data())
def test_corrections(http, data):
    """A valid correction with one to three fields replaced: by a value of the right kind that breaks a
    rule (a negative slice, a reversed or NaN window, a 3000-character prompt ...) or by any JSON."""
    draw = data.draw
    body = _valid_correction()
    for key in draw(st.lists(st.sampled_from([*CORRECTION_FIELDS, "extra"]), min_size=1, max_size=3)):
        if key == "extra":
            body["extra"] = 1
        else:
            body[key] = draw(st.one_of(CORRECTION_FIELDS[key], CORRECTION_FIELDS[key], json_values))
    raw = json.dumps(body)  # NaN and Infinity as bare words, which Python's JSON reader accepts
    r = http.post(f"/v1/projects/{FUZZ_PROJECT}/corrections", content=raw, headers={"Content-Type": "application/json"})
    _check(r, body)
    project = quote(draw(names), safe="")
    _check(http.get(f"/v1/projects/{project}/corrections", params=query(draw, {"target": texts})), "list")
    _check(http.delete(f"/v1/projects/{project}/corrections/{quote(draw(names), safe='')}"), "remove")


@FUZZ
@given(st.data())
def test_finetune_jobs_and_adapters(http, data):
    draw = data.draw
    keys = ["variant", "max_steps", "epochs", "budget_s", "batch_size", "lr", "seed", "init_adapter"]
    body = draw(st.one_of(st.dictionaries(st.sampled_from(keys + ["x"]), json_values, max_size=5), json_values))
    project = quote(draw(names.filter(lambda n: n != FUZZ_PROJECT)), safe="")
    _check(http.post(f"/v1/projects/{project}/finetune", content=json.dumps(body),
                     headers={"Content-Type": "application/json"}), body)
    job = quote(draw(names), safe="")
    _check(http.get(f"/v1/jobs/{job}"), "job")
    _check(http.post(f"/v1/jobs/{job}/cancel"), "cancel")
    _check(http.get(f"/v1/jobs/{job}/events", params=query(draw, {"cancel_on_disconnect": scalars})), "events")
    _check(http.get(f"/v1/projects/{project}/adapters"), "adapters")
    _check(http.get(f"/v1/projects/{project}/adapters/{quote(draw(names), safe='')}"), "adapter")
    _check(http.get("/v1/info"), "info")


@pytest.fixture(scope="module")
def worklist_project(server, tmp_path_factory):
    """A server project with a worklist of two frames (added on the server, as an admin does)."""
    import imageio.v3 as iio

    from napari_vlsm.core.worklist import Worklist

    folder = tmp_path_factory.mktemp("fz-frames")
    for n in range(2):
        iio.imwrite(folder / f"f{n}.png", np.full((16, 20, 3), 40 * n, np.uint8))
    with Worklist(server.project_root / "fzw") as wl:
        wl.add([folder])
    return "fzw"


# real ids, unknown ones and ones past SQLite's 64-bit integers
item_ids = st.one_of(st.sampled_from([1, 2, 0, -1, 3, 2**63, -(2**63) - 1, 10**30]), st.integers(-(10**30), 10**30), texts)
orders = st.one_of(st.sampled_from(["in-order", "random", "most-uncertain"]), texts)
structure_rows = st.lists(st.fixed_dictionaries({"value": numbers, "name": texts, "prompt": texts}), max_size=4)


@FUZZ
@given(st.data())
def test_worklist_routes(http, worklist_project, data):
    """The worklist's routes (the dock's server mode): next, plan, hold, release, status, an item's
    pixels and mask, a mask upload with any body and any legend header."""
    draw = data.draw
    project = draw(st.one_of(st.just(worklist_project), st.just(worklist_project), names))
    base = f"/v1/projects/{quote(project, safe='')}"
    item = f"{base}/items/{quote(str(draw(item_ids)), safe='')}"
    body = {"holder": draw(st.one_of(st.just("fuzz"), texts)), "order": draw(orders),
            "count": draw(st.one_of(st.integers(-2, 12), numbers)), "seed": draw(numbers),
            "lease_s": draw(numbers), "previous_id": draw(st.one_of(st.none(), item_ids)),
            "previous_status": draw(st.one_of(st.none(), st.sampled_from(["done", "skipped", "x"])))}
    for key in draw(st.lists(st.sampled_from(list(body)), max_size=3)):
        body[key] = draw(json_values)
    raw, as_json = json.dumps(body), {"Content-Type": "application/json"}
    for route in ("status", "next", "plan", "hold", "release", "set", "image", "mask", "put"):  # every one, each time
        if route == "status":
            r = http.get(f"{base}/worklist", params=query(draw, {"holder": texts}))
        elif route in ("next", "plan"):
            r = http.post(f"{base}/next" + ("/plan" if route == "plan" else ""), content=raw, headers=as_json)
        elif route in ("hold", "release"):
            r = http.post(f"{item}/{route}", content=raw, headers=as_json)
        elif route == "set":
            r = http.post(f"{item}/status", content=json.dumps({"holder": "fuzz", "status": draw(texts)}), headers=as_json)
        elif route in ("image", "mask"):
            r = http.get(f"{item}/{route}")
        else:
            legend = draw(st.one_of(structure_rows, json_values, st.just([{"value": 1, "name": "a", "prompt": "a"}])))
            r = http.put(f"{item}/mask", params=query(draw, {"holder": texts}), content=draw(bodies()),
                         headers={"Content-Type": draw(st.sampled_from(["application/x-npy+zstd", "text/plain"])),
                                  "X-VLSM-Structures": json.dumps(legend)})
        _check(r, (route, item, raw))
    http.post(f"/v1/projects/{worklist_project}/items/1/release", json={"holder": "fuzz"})
