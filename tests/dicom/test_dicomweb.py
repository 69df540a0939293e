"""DICOMweb read side, checked with clients nobody on this project wrote: dicomweb-client and wsidicom."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select


def _token(world, username: str = "tech") -> str:
    from pathology_hub.domain import accounts
    from pathology_hub.models import User
    user = world.scalar(select(User).where(User.username == username))
    token = accounts.create_api_token(world, user, "dicomweb-test")
    world.commit()
    return token


def _session(token: str):
    import requests
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def _slide(world, slide_id: int):
    from pathology_hub.models import Slide
    return world.get(Slide, slide_id)


def _platform_region(live_server: str, session, slide, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    """A region of a Deep Zoom level assembled from the platform's own tiles (overlap cut away)."""
    from pathology_hub.tiling.geometry import Geometry
    dzi = session.get(f"{live_server}/api/v1/tiles/{slide.uid}/v{slide.pyramid_version}/slide.dzi").text
    import re
    size = int(re.search(r'TileSize="(\d+)"', dzi).group(1))
    overlap = int(re.search(r'Overlap="(\d+)"', dzi).group(1))
    width = int(re.search(r'Width="(\d+)"', dzi).group(1))
    height = int(re.search(r'Height="(\d+)"', dzi).group(1))
    g = Geometry(width, height, size, overlap)
    lw, lh = g.level_dimensions[level]
    canvas = Image.new("RGB", (lw, lh))
    cols, rows = g.level_tiles(level)
    for r in range(y // size, min(rows, (y + h - 1) // size + 1)):
        for c in range(x // size, min(cols, (x + w - 1) // size + 1)):
            data = session.get(f"{live_server}/api/v1/tiles/{slide.uid}/v{slide.pyramid_version}/"
                               f"slide_files/{level}/{c}_{r}.jpeg").content
            tile = Image.open(io.BytesIO(data)).convert("RGB")
            left = overlap if c else 0
            top = overlap if r else 0
            canvas.paste(tile.crop((left, top, left + min(size, lw - c * size), top + min(size, lh - r * size))),
                         (c * size, r * size))
    return np.asarray(canvas.crop((x, y, x + w, y + h)), dtype=np.int16)


@pytest.mark.slow
def test_qido_lists_only_visible_studies_and_wsidicom_reads_levels(world, ready_slide, demo_case_id, live_server):
    from dicomweb_client.api import DICOMwebClient
    from wsidicom import WsiDicom, WsiDicomWebClient

    from pathology_hub.domain.dicom import uids
    from pathology_hub.models import Case
    slide_id = ready_slide(demo_case_id)
    slide = _slide(world, slide_id)
    world.expire_all()
    case = world.get(Case, demo_case_id)
    token = _token(world)
    session = _session(token)
    client = DICOMwebClient(f"{live_server}/dicomweb", session=session)

    studies = client.search_for_studies(search_filters={"ModalitiesInStudy": "SM"})
    study_uid = uids.study_uid(case.id, case.created_at)
    assert [s["0020000D"]["Value"][0] for s in studies] == [study_uid]
    assert studies[0]["00100020"]["Value"][0] == case.patient_pseudo_id
    series = client.search_for_series(study_uid)
    series_uid = uids.slide_series_uid(slide.uid, slide.pyramid_version)
    assert [s["0020000E"]["Value"][0] for s in series] == [series_uid]
    instances = client.search_for_instances(study_uid, series_uid)
    assert len(instances) >= 3

    # someone outside the case's centre and its consultation sees nothing and cannot guess a UID
    other = _session(_token(world, "tech2"))  # COMM2: another centre, no consultation on the case
    assert DICOMwebClient(f"{live_server}/dicomweb", session=other).search_for_studies() == []
    assert other.get(f"{live_server}/dicomweb/studies/{study_uid}/series").status_code == 404
    frame_url = (f"{live_server}/dicomweb/studies/{study_uid}/series/{series_uid}/instances/"
                 f"{instances[0]['00080018']['Value'][0]}/frames/1")
    assert other.get(frame_url).status_code == 404
    assert session.get(frame_url).status_code == 200
    # no credentials: 401 JSON, not a login page
    import requests
    assert requests.get(f"{live_server}/dicomweb/studies").status_code == 401

    wsi = WsiDicom.open_web(WsiDicomWebClient(client), study_uid, series_uid)
    try:
        assert wsi.size.width == slide_width(world, slide_id, session, live_server, slide)[0]
        assert len(wsi.levels) >= 3
        # full resolution and two coarser levels, compared with the platform's own tiles
        from pathology_hub.tiling.geometry import Geometry  # noqa: F401
        dz_max = _dz_max_level(session, live_server, slide)
        for wsi_level, (x, y, w, h) in ((0, (300, 200, 600, 500)), (1, (100, 120, 400, 300)),
                                        (2, (0, 0, 300, 250))):
            region = np.asarray(wsi.read_region((x, y), wsi_level, (w, h)).convert("RGB"), dtype=np.int16)
            ours = _platform_region(live_server, session, slide, dz_max - wsi_level, x, y, w, h)
            # frames of an overlap pyramid are re-encoded once (quality 90): JPEG noise, no shift
            diff = np.abs(region - ours)
            assert diff.mean() < 3.0, (wsi_level, diff.mean())
            assert region.std() > 5  # real tissue, not a blank
    finally:
        wsi.close()


def _has_user(world, username: str) -> bool:
    from pathology_hub.models import User
    return world.scalar(select(User).where(User.username == username)) is not None


def _dz_max_level(session, live_server, slide) -> int:
    import re

    from pathology_hub.tiling.geometry import Geometry
    dzi = session.get(f"{live_server}/api/v1/tiles/{slide.uid}/v{slide.pyramid_version}/slide.dzi").text
    w = int(re.search(r'Width="(\d+)"', dzi).group(1))
    h = int(re.search(r'Height="(\d+)"', dzi).group(1))
    return Geometry(w, h).max_level


def slide_width(world, slide_id, session, live_server, slide) -> tuple[int, int]:
    import re
    dzi = session.get(f"{live_server}/api/v1/tiles/{slide.uid}/v{slide.pyramid_version}/slide.dzi").text
    return int(re.search(r'Width="(\d+)"', dzi).group(1)), int(re.search(r'Height="(\d+)"', dzi).group(1))


def test_frames_are_multipart_jpeg_and_unknown_frame_is_404(world, ready_slide, demo_case_id, client_for):
    from pathology_hub.domain.dicom import uids
    from pathology_hub.models import Case
    slide = _slide(world, ready_slide(demo_case_id))
    world.expire_all()
    case = world.get(Case, demo_case_id)
    study = uids.study_uid(case.id, case.created_at)
    series = uids.slide_series_uid(slide.uid, slide.pyramid_version)
    client = client_for("tech")
    insts = client.get(f"/dicomweb/studies/{study}/series/{series}/instances").get_json()
    top = max((i for i in insts if "00480006" in i), key=lambda i: i["00480006"]["Value"][0])
    uid = top["00080018"]["Value"][0]
    base = f"/dicomweb/studies/{study}/series/{series}/instances/{uid}"
    resp = client.get(f"{base}/frames/1,2", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith('multipart/related; type="image/jpeg"')
    assert resp.data.count(b"\xff\xd8\xff") == 2
    assert client.get(f"{base}/frames/999999").status_code == 404
    assert client.get(f"{base}/frames/1", headers={"Accept": "image/png"}).status_code == 406
    meta = client.get(f"{base}/metadata").get_json()[0]
    assert meta["00209311"]["Value"] == ["TILED_FULL"]
    assert meta["00100010"]["Value"][0]["Alphabetic"] == case.patient_pseudo_id
    pytest.importorskip("pydicom")


def test_label_and_macro_are_served_only_to_those_who_may_see_the_label(world, settings, ready_slide, demo_case_id,
                                                                        client_for, monkeypatch):
    from pathology_hub.domain import policy
    from pathology_hub.domain.dicom import uids
    from pathology_hub.models import Case
    from tests.dicom.test_export import _put_label
    slide_id = ready_slide(demo_case_id)
    _put_label(settings, world, slide_id, "Zhang Sanfeng")
    slide = _slide(world, slide_id)
    world.expire_all()
    case = world.get(Case, demo_case_id)
    study = uids.study_uid(case.id, case.created_at)
    series = uids.slide_series_uid(slide.uid, slide.pyramid_version)
    url = f"/dicomweb/studies/{study}/series/{series}/instances"
    client = client_for("tech")

    def kinds():
        return sorted(i["00080008"]["Value"][2] for i in client.get(url).get_json())
    assert "LABEL" in kinds() and "OVERVIEW" in kinds()
    label = next(i for i in client.get(url).get_json() if i["00080008"]["Value"][2] == "LABEL")
    label_uid = label["00080018"]["Value"][0]
    frame = client.get(f"{url}/{label_uid}/frames/1")
    assert frame.status_code == 200 and frame.data.count(b"\xff\xd8\xff") == 1
    meta = client.get(f"{url}/{label_uid}/metadata").get_json()[0]
    assert b"Zhang" not in json_bytes(meta)

    monkeypatch.setitem(policy._RULES, "slide.view_label", lambda user, slide: False)
    assert set(kinds()) == {"VOLUME"}
    assert client.get(f"{url}/{label_uid}/frames/1").status_code == 404
    assert client.get(f"{url}/{label_uid}/metadata").status_code == 404


def json_bytes(obj) -> bytes:
    import json
    return json.dumps(obj).encode()


def test_annotations_are_a_series_of_their_own_and_follow_every_edit(world, ready_slide, demo_case_id, client_for):
    """The slide's Bulk Simple Annotations instance is listed (modality ANN) for a user who may see the
    annotations, retrieved whole as application/dicom, and replaced by a new instance after an edit."""
    import pydicom

    from pathology_hub.domain import policy
    from pathology_hub.domain.dicom import uids
    from pathology_hub.models import Case, Role

    def grant(user, case):
        return user.role is Role.PATHOLOGIST and user.institution.code == "DIST1"
    policy.register_case_access(grant)
    try:
        slide = _slide(world, ready_slide(demo_case_id))
        world.expire_all()
        case = world.get(Case, demo_case_id)
        study = uids.study_uid(case.id, case.created_at)
        ann_series = uids.annotation_series_uid(slide.uid, slide.pyramid_version)
        path = client_for("pathologist")

        def ann_instances():
            items = path.get(f"/dicomweb/studies/{study}/instances").get_json()
            return [i for i in items if i["0020000E"]["Value"][0] == ann_series]
        assert ann_instances() == []  # no annotations yet: no series
        square = {"geometry": {"type": "Polygon", "coordinates": [[[10, 10], [110, 10], [110, 110], [10, 110], [10, 10]]]},
                  "properties": {"class": "tumour"}}
        created = path.post(f"/api/v1/slides/{slide.id}/annotations", json=square)
        assert created.status_code == 201, created.get_data(as_text=True)
        (first,) = ann_instances()
        assert first["00080060"]["Value"] == ["ANN"]
        uid = first["00080018"]["Value"][0]
        resp = path.get(f"/dicomweb/studies/{study}/series/{ann_series}/instances/{uid}",
                        headers={"Accept": 'multipart/related; type="application/dicom"'})
        assert resp.status_code == 200 and 'type="application/dicom"' in resp.headers["Content-Type"]
        (part,) = _multipart_parts(resp.data, resp.headers["Content-Type"])
        ds = pydicom.dcmread(io.BytesIO(part))
        assert ds.SOPInstanceUID == uid and ds.Modality == "ANN" and ds.StudyInstanceUID == study
        assert len(ds.AnnotationGroupSequence) == 1
        # an edit gives a new instance; the old one is gone (never a stale copy)
        second = {"geometry": {"type": "Point", "coordinates": [500, 500]}}
        assert path.post(f"/api/v1/slides/{slide.id}/annotations", json=second).status_code == 201
        (after,) = ann_instances()
        assert after["00080018"]["Value"][0] != uid
        assert path.get(f"/dicomweb/studies/{study}/series/{ann_series}/instances/{uid}").status_code == 404
        # a pyramid level is not offered as one whole instance
        level_series = uids.slide_series_uid(slide.uid, slide.pyramid_version)
        level = path.get(f"/dicomweb/studies/{study}/series/{level_series}/instances").get_json()[0]
        assert path.get(f"/dicomweb/studies/{study}/series/{level_series}/instances/"
                        f"{level['00080018']['Value'][0]}").status_code == 406
        # the technician of the uploading centre sees the slides but not the unsigned annotations
        assert [i for i in client_for("tech").get(f"/dicomweb/studies/{study}/instances").get_json()
                if i["0020000E"]["Value"][0] == ann_series] == []
    finally:
        policy._CASE_ACCESS_GRANTS.remove(grant)


def _multipart_parts(body: bytes, content_type: str) -> list[bytes]:
    """The bodies of a multipart/related message, parsed by the standard library's e-mail parser."""
    from email import message_from_bytes, policy as email_policy
    msg = message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
                             policy=email_policy.HTTP)
    return [p.get_payload(decode=True) for p in msg.iter_parts()]
