"""PAdES signatures on report PDFs (pyHanko, baseline B-B) and their validation.

Why a deployment key: the report's integrity must be checkable by anyone holding the
PDF (a clinician's PDF reader, pyHanko's validator) without asking our server. The
embedded default is a self-signed ECDSA P-256 certificate created once under the
instance folder; a real deployment points ``REPORT_SIGNING_KEY`` / ``REPORT_SIGNING_CERT``
(PEM files; the cert file may carry the issuing chain after the leaf) at a certificate
from its own CA, which is loaded instead.

Validation never raises: unparsable bytes, a PDF without a signature, or a modified
byte all give ``intact=False``/``valid=False`` with a one-line reason, because the
verification page and ``flask`` commands must show an answer, not a stack trace.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

SUBJECT_CN = "Pathology Hub report signing"
SUBJECT_O = "Pathology Hub"
VALIDITY_DAYS = 3652  # 10 years
KEY_FILE = "report-signing-key.pem"
CERT_FILE = "report-signing-cert.pem"


class SigningSetupError(RuntimeError):
    """The signing key or certificate cannot be created or loaded (message says which file)."""


@dataclass(frozen=True)
class SigningIdentity:
    """The deployment's signing key with its certificate chain (leaf first)."""

    key_pem: bytes = field(repr=False)
    cert_chain_pem: tuple[bytes, ...]
    key_path: str = ""
    cert_path: str = ""

    @property
    def certificate_pem(self) -> bytes:
        """The leaf (signing) certificate, PEM."""
        return self.cert_chain_pem[0]

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @property
    def subject_name(self) -> str:
        """RFC 4514 subject, e.g. ``O=Pathology Hub,CN=Pathology Hub report signing``."""
        return self.certificate.subject.rfc4514_string()

    @property
    def common_name(self) -> str:
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else self.subject_name

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    # asn1crypto objects, the currency of pyHanko
    def _asn1_certs(self) -> list[asn1_x509.Certificate]:
        out = []
        for pem in self.cert_chain_pem:
            der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
            out.append(asn1_x509.Certificate.load(der))
        return out

    def _asn1_key(self) -> asn1_keys.PrivateKeyInfo:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return asn1_keys.PrivateKeyInfo.load(der)


def _off_loop(fn, *args, **kwargs):
    """pyHanko's sync API calls ``asyncio.run``, which refuses to run inside a thread that already
    has a running loop (an async server, Playwright's sync API); then run it on a fresh thread."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _split_pem_certs(data: bytes) -> tuple[bytes, ...]:
    certs = x509.load_pem_x509_certificates(data)
    return tuple(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _create_self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, _self_signed_cert(key)


def _self_signed_cert(key) -> bytes:
    """The embedded default certificate: self-signed, 10 years, for signing documents only."""
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, SUBJECT_CN),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, SUBJECT_O),
    ])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    """Create with mode 0600 from the start (no window where the key is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _load(key_path: str, cert_path: str) -> SigningIdentity:
    try:
        key_pem = Path(key_path).read_bytes()
    except OSError as exc:
        raise SigningSetupError(f"cannot read report signing key {key_path!r}: {exc.strerror}") from None
    try:
        cert_data = Path(cert_path).read_bytes()
    except OSError as exc:
        raise SigningSetupError(f"cannot read report signing certificate {cert_path!r}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningSetupError(f"{key_path!r} is not an unencrypted PEM private key: {exc}") from None
    try:
        chain = _split_pem_certs(cert_data)
    except ValueError as exc:
        raise SigningSetupError(f"{cert_path!r} is not a PEM certificate: {exc}") from None
    if not chain:
        raise SigningSetupError(f"{cert_path!r} contains no certificate")
    leaf = x509.load_pem_x509_certificate(chain[0])
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if (leaf.public_key().public_bytes(serialization.Encoding.DER, pub)
            != key.public_key().public_bytes(serialization.Encoding.DER, pub)):
        raise SigningSetupError(f"the key {key_path!r} does not belong to the certificate {cert_path!r}")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise SigningSetupError(f"unsupported key type in {key_path!r} (use ECDSA P-256 or RSA)")
    # store the key as PKCS#8 whatever the file format (PKCS#1 / SEC1) was
    norm_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return SigningIdentity(norm_key, chain, key_path=str(key_path), cert_path=str(cert_path))


def load_or_create_identity(instance_path: str, key_path: str | None = None,
                            cert_path: str | None = None) -> SigningIdentity:
    """The deployment's signing identity.

    With ``key_path`` and ``cert_path`` (``REPORT_SIGNING_KEY`` / ``REPORT_SIGNING_CERT``)
    load a real certificate. Without, create once (and later reuse) the embedded default
    under ``<instance_path>/signing/``.
    """
    if key_path or cert_path:
        if not (key_path and cert_path):
            raise SigningSetupError("REPORT_SIGNING_KEY and REPORT_SIGNING_CERT must be set together")
        return _load(key_path, cert_path)
    folder = Path(instance_path) / "signing"
    kp, cp = folder / KEY_FILE, folder / CERT_FILE
    if not (kp.exists() and cp.exists()):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # several processes (gunicorn workers, the CLI) may start at once: one creates, the others reuse
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not kp.exists():
                    key_pem, cert_pem = _create_self_signed()
                    _write_private(kp, key_pem)
                    _write_atomic(cp, cert_pem)
                    log.info("created the default report signing certificate in %s", folder)
                elif not cp.exists():
                    # a crash between the two writes: certify the existing key rather than orphan it
                    key = serialization.load_pem_private_key(kp.read_bytes(), password=None)
                    _write_atomic(cp, _self_signed_cert(key))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return _load(str(kp), str(cp))


def sign_pdf(pdf: bytes, identity: SigningIdentity, *, signer_name: str, reason: str, location: str) -> bytes:
    """Add a PAdES B-B signature (SHA-256) as an incremental update; returns the signed PDF."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    certs = identity._asn1_certs()
    registry = SimpleCertificateStore()
    registry.register_multiple(certs[1:])
    signer = signers.SimpleSigner(signing_cert=certs[0], signing_key=identity._asn1_key(),
                                  cert_registry=registry)
    meta = signers.PdfSignatureMetadata(
        field_name="ReportSignature",
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        name=signer_name,
        reason=reason,
        location=location,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    out = _off_loop(signers.sign_pdf, writer, meta, signer=signer)
    return out.getvalue()


@dataclass(frozen=True)
class ValidationResult:
    """What a verifier needs: is the document unchanged, is the signer trusted, who, when."""

    intact: bool
    valid: bool
    signer: str
    signed_at: dt.datetime | None
    summary: str


def validate_pdf(pdf: bytes, identity: SigningIdentity) -> ValidationResult:
    """Check every signature in ``pdf`` against the deployment certificate; never raises.

    ``intact`` means the signed byte ranges hash to the signed digest and the signature
    covers the whole file (no unsigned changes appended); ``valid`` adds that the signer's
    certificate chains to ``identity``'s certificate.
    """
    try:
        return _validate(pdf, identity)
    except Exception as exc:  # noqa: BLE001 - any parser failure is an answer: "not valid"
        log.info("report PDF validation failed: %s", exc)
        return ValidationResult(False, False, "", None, f"not a readable signed PDF: {type(exc).__name__}: {exc}"[:300])


def _sig_name(sig) -> str:
    """The signer's name as written into the signature dictionary (/Name) at signing."""
    try:
        return str(sig.sig_object.get("/Name", "") or "")
    except Exception:  # noqa: BLE001 - a damaged dictionary just means "no name"
        return ""


def _validate(pdf: bytes, identity: SigningIdentity) -> ValidationResult:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    if not isinstance(pdf, (bytes, bytearray)) or not pdf.lstrip()[:5] == b"%PDF-":
        return ValidationResult(False, False, "", None, "not a PDF file")
    reader = PdfFileReader(io.BytesIO(bytes(pdf)), strict=False)
    sigs = reader.embedded_signatures
    if not sigs:
        return ValidationResult(False, False, "", None, "the PDF carries no digital signature")
    root = identity._asn1_certs()
    intact_all, valid_all = True, True
    signer, signed_at, notes = "", None, []
    for sig in sigs:
        vc = ValidationContext(trust_roots=[root[-1], root[0]], other_certs=root[1:], allow_fetching=False)
        try:
            status = _off_loop(validate_pdf_signature, sig, vc)
        except SignatureValidationError as exc:
            # e.g. a changed byte inside the CMS blob: the signature itself is damaged
            return ValidationResult(False, False, _sig_name(sig), None,
                                    f"signature NOT valid: the signature data is damaged ({exc})"[:300])
        cert_subject = status.signing_cert.subject.human_friendly if status.signing_cert else ""
        name = _sig_name(sig)
        signer = name or cert_subject
        signed_at = status.signer_reported_dt
        intact = bool(status.intact)
        valid = bool(status.intact and status.valid and status.trusted)
        # our report PDFs never change after signing: anything beyond the signed revision
        # (an incremental update, appended bytes) counts as tampering
        if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
            intact = valid = False
            notes.append("the file was changed after signing")
        if status.docmdp_ok is False:
            valid = False
            notes.append("disallowed modifications after signing")
        intact_all &= intact
        valid_all &= valid
        if not status.intact:
            notes.append("the signed content was modified (digest mismatch)")
        elif not status.valid:
            notes.append("the cryptographic signature does not verify")
        elif not status.trusted:
            notes.append("the signing certificate is not this deployment's")
    if valid_all:
        when = signed_at.isoformat() if signed_at else "unknown time"
        summary = f"signature valid: signed by {signer} ({cert_subject}) at {when}; document unchanged"
    else:
        summary = "signature NOT valid: " + "; ".join(dict.fromkeys(notes) or ["unknown reason"])
    return ValidationResult(intact_all, valid_all, signer, signed_at, summary)
