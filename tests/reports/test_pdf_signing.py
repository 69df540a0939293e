"""PAdES signing of report PDFs: our validator, pyHanko's validator used directly and
poppler's independent ``pdfsig`` must agree; any change to a signed byte is caught."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import stat
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pathology_hub.reporting.pdf import render_report_pdf
from pathology_hub.reporting.signing import (SigningSetupError, ValidationResult, load_or_create_identity, sign_pdf,
                                             validate_pdf)
from tests.conftest import require
from tests.reports.test_pdf_render import sample_document

pytestmark = pytest.mark.no_database

SIGNER = "张伟 Zhang Wei"


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return load_or_create_identity(str(tmp_path_factory.mktemp("instance")))


@pytest.fixture(scope="module")
def unsigned() -> bytes:
    return render_report_pdf(sample_document())


@pytest.fixture(scope="module")
def signed(identity, unsigned) -> bytes:
    return sign_pdf(unsigned, identity, signer_name=SIGNER, reason="diagnosis approved 诊断已批准",
                    location="University Hospital")


def _pyhanko_status(data: bytes, trust_pem: bytes):
    """pyHanko's validator called directly, independent of our wrapper."""
    from asn1crypto import pem, x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _, _, der = pem.unarmor(trust_pem)
    root = asn1_x509.Certificate.load(der)
    reader = PdfFileReader(io.BytesIO(data))
    (sig,) = reader.embedded_signatures
    from pathology_hub.reporting.signing import _off_loop
    return _off_loop(validate_pdf_signature, sig, ValidationContext(trust_roots=[root]))


def _pdfsig(tmp_path, data: bytes) -> str:
    tool = shutil.which("pdfsig")
    require(tool is not None, "pdfsig (Debian poppler-utils) is not installed")
    path = tmp_path / "signed.pdf"
    path.write_bytes(data)
    return subprocess.run([tool, str(path)], capture_output=True, text=True).stdout


def test_signed_pdf_validates(identity, signed, unsigned, tmp_path):
    assert signed.startswith(unsigned), "the signature is an incremental update of the rendered PDF"
    result = validate_pdf(signed, identity)
    assert isinstance(result, ValidationResult)
    assert result.intact and result.valid, result.summary
    assert result.signer == SIGNER
    assert result.signed_at is not None and result.signed_at.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - result.signed_at).total_seconds()) < 600
    assert "valid" in result.summary and SIGNER in result.summary


def test_pyhanko_and_pdfsig_agree(identity, signed, tmp_path):
    status = _pyhanko_status(signed, identity.certificate_pem)
    assert status.intact and status.valid and status.trusted
    assert status.bottom_line
    assert status.md_algorithm == "sha256"
    # PAdES: ETSI.CAdES.detached sub-filter; the signature covers the whole file
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    out = _pdfsig(tmp_path, signed)
    assert "Signature Validation: Signature is Valid." in out, out
    assert "ETSI.CAdES.detached" in out and "SHA-256" in out
    assert "Total document signed" in out
    assert "Pathology Hub report signing" in out


def _signed_ranges(data: bytes) -> tuple[int, int, int, int]:
    m = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data)
    assert m
    return tuple(int(v) for v in m.groups())  # type: ignore[return-value]


@pytest.mark.parametrize("where", ["start", "middle", "end", "signature"])
def test_one_flipped_byte_fails(identity, signed, unsigned, tmp_path, where):
    a, b, c, d = _signed_ranges(signed)
    offset = {"start": 200, "middle": len(unsigned) // 2, "end": c + d - 20, "signature": b + 200}[where]
    tampered = bytearray(signed)
    tampered[offset] = tampered[offset] ^ 0x01 if where != "signature" else ord("0" if tampered[offset] != ord("0") else "1")
    result = validate_pdf(bytes(tampered), identity)
    assert not result.valid, result
    assert result.summary.startswith(("signature NOT valid", "not a readable"))
    if where == "middle":
        assert not result.intact
        assert "modified" in result.summary
        assert "Digest Mismatch" in _pdfsig(tmp_path, bytes(tampered))


def test_changes_appended_after_signing_fail(identity, signed):
    result = validate_pdf(signed + b"\n% an unsigned addition\n", identity)
    assert not result.valid and not result.intact
    # a proper incremental update (e.g. an added page object) after signing is refused too
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.document_meta.title = "changed"
    writer.root["/PageLabels"] = generic.DictionaryObject()
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    result = validate_pdf(out.getvalue(), identity)
    assert not result.valid, result


@pytest.mark.parametrize("data", [b"", b"garbage", b"%PDF-1.7\n garbage", None, "text"])
def test_garbage_gives_a_result_not_an_exception(identity, data):
    result = validate_pdf(data, identity)  # type: ignore[arg-type]
    assert not result.intact and not result.valid and result.summary


def test_truncated_and_unsigned(identity, signed, unsigned):
    for data in (signed[: len(signed) // 2], signed[:-30], signed[:1000]):
        result = validate_pdf(data, identity)
        assert not result.valid and not result.intact and result.summary
    result = validate_pdf(unsigned, identity)
    assert not result.valid and "no digital signature" in result.summary


def test_another_deployments_certificate_is_not_trusted(signed, tmp_path):
    other = load_or_create_identity(str(tmp_path / "other"))
    result = validate_pdf(signed, other)
    assert result.intact and not result.valid
    assert "not this deployment" in result.summary


def test_identity_created_once_and_reused(tmp_path):
    first = load_or_create_identity(str(tmp_path))
    key_file = tmp_path / "signing" / "report-signing-key.pem"
    cert_file = tmp_path / "signing" / "report-signing-cert.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "signing").st_mode) == 0o700
    second = load_or_create_identity(str(tmp_path))
    assert second.certificate_pem == first.certificate_pem
    assert second.key_pem == first.key_pem
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Pathology Hub report signing"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Pathology Hub"
    assert first.common_name == "Pathology Hub report signing"
    assert "Pathology Hub" in first.subject_name
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3640 <= days <= 3660


def _write_ca_and_leaf(folder, key_kind: str):
    """A small real-world setup: a CA and a leaf signing certificate issued by it."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Hospital CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = rsa.generate_private_key(65537, 2048) if key_kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Report signing, Test Hospital")])
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(2).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    fmt = serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 / SEC1, as openssl writes them
    key_path.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, ca


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_configured_certificate_with_chain(tmp_path, unsigned, kind):
    key_path, cert_path, ca = _write_ca_and_leaf(tmp_path, kind)
    ident = load_or_create_identity(str(tmp_path / "instance"), str(key_path), str(cert_path))
    assert not (tmp_path / "instance" / "signing").exists(), "no default key is created when one is configured"
    assert ident.common_name == "Report signing, Test Hospital"
    assert len(ident.cert_chain_pem) == 2
    signed = sign_pdf(unsigned, ident, signer_name="Dr Test", reason="approved", location="X")
    result = validate_pdf(signed, ident)
    assert result.valid and result.intact, result.summary
    status = _pyhanko_status(signed, ca.public_bytes(serialization.Encoding.PEM))
    assert status.bottom_line


def test_configuration_errors_are_clear(tmp_path):
    key_path, cert_path, _ = _write_ca_and_leaf(tmp_path, "ec")
    with pytest.raises(SigningSetupError, match="together"):
        load_or_create_identity(str(tmp_path), str(key_path), None)
    with pytest.raises(SigningSetupError, match="cannot read"):
        load_or_create_identity(str(tmp_path), str(tmp_path / "missing.pem"), str(cert_path))
    with pytest.raises(SigningSetupError, match="not a PEM certificate|no certificate"):
        load_or_create_identity(str(tmp_path), str(key_path), str(key_path))
    (tmp_path / "other").mkdir()
    other_key, _, _ = _write_ca_and_leaf(tmp_path / "other", "ec")
    with pytest.raises(SigningSetupError, match="does not belong"):
        load_or_create_identity(str(tmp_path), str(other_key), str(cert_path))


def test_sign_and_validate_time(identity, unsigned):
    started = time.perf_counter()
    signed = sign_pdf(unsigned, identity, signer_name=SIGNER, reason="r", location="l")
    signing = time.perf_counter() - started
    started = time.perf_counter()
    assert validate_pdf(signed, identity).valid
    validating = time.perf_counter() - started
    assert signing < 5 and validating < 5


def test_concurrent_first_start_creates_one_identity(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(6) as pool:
        identities = list(pool.map(lambda _: load_or_create_identity(str(tmp_path)), range(6)))
    assert len({i.certificate_pem for i in identities}) == 1
    assert len({i.key_pem for i in identities}) == 1


def test_lost_certificate_is_reissued_for_the_same_key(tmp_path, unsigned):
    first = load_or_create_identity(str(tmp_path))
    (tmp_path / "signing" / "report-signing-cert.pem").unlink()
    again = load_or_create_identity(str(tmp_path))
    assert again.key_pem == first.key_pem
    signed = sign_pdf(unsigned, again, signer_name="x", reason="r", location="l")
    assert validate_pdf(signed, again).valid
