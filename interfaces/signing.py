"""Digital signatures on lab reports (Circular 13/2025/TT-BYT: released reports carry the responsible person's
certificate-based signature): PAdES (ETSI EN 319 142, ``ETSI.CAdES.detached``) with pyHanko.

* :class:`ReportSigner` is the pluggable interface; :class:`Pkcs12Signer` signs with the validator's PKCS#12 file
  (``<pki>/users/<username>.p12`` with its passphrase in ``<username>.pass``). A remote signing service or a USB
  token (PKCS#11) is another implementation of the same interface.
* :func:`verify_pdf` checks that a PDF's signatures are intact, cover the whole file, and (with a CA) chain to
  a trusted root: this is ``lis report verify FILE``.
* :func:`create_demo_pki` makes a demo CA and one certificate per user, for ``lis demo`` only.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)


class SigningError(RuntimeError):
    """A report cannot be signed (no key for the validator, wrong passphrase, expired certificate...)."""


class SigningKeyMissing(SigningError):
    pass


@dataclass(frozen=True, slots=True)
class SignedPdf:
    pdf: bytes
    certificate_subject: str


class ReportSigner(Protocol):
    """Signs a report PDF on behalf of ``username`` (the validator who released it)."""

    def available(self, username: str) -> bool:
        """Whether ``username`` can sign at all (checked before a report is rendered)."""
        ...

    def sign(self, pdf: bytes, username: str, *, reason: str, location: str) -> SignedPdf: ...


def pki_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "pki"


class Pkcs12Signer:
    """PAdES baseline signature with a PKCS#12 key file per user (this version's key storage)."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = Path(keys_dir)

    def available(self, username: str) -> bool:
        return bool(username) and self.key_paths(username)[0].exists()

    def key_paths(self, username: str) -> tuple[Path, Path]:
        return self.keys_dir / f"{username}.p12", self.keys_dir / f"{username}.pass"

    def sign(self, pdf: bytes, username: str, *, reason: str, location: str) -> SignedPdf:
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import fields, signers

        p12, passfile = self.key_paths(username)
        if not username or not p12.exists():
            raise SigningKeyMissing(f"no signing key for user {username or '(none)'!r}: expected {p12}")
        passphrase = passfile.read_bytes().strip() if passfile.exists() else None
        try:
            signer = signers.SimpleSigner.load_pkcs12(str(p12), passphrase=passphrase)
        except Exception as exc:  # pyHanko/oscrypto raise assorted errors for a bad file or passphrase
            raise SigningError(f"cannot open the signing key of {username!r} ({p12.name}): {exc}") from exc
        if signer is None:
            raise SigningError(f"cannot open the signing key of {username!r} ({p12.name}): wrong passphrase?")
        cert = signer.signing_cert
        now = dt.datetime.now(dt.UTC)
        if cert.not_valid_after < now or cert.not_valid_before > now:
            raise SigningError(f"the certificate of {username!r} is not valid now (valid until {cert.not_valid_after})")
        meta = signers.PdfSignatureMetadata(
            field_name="LabReportSignature", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason, location=location, name=cert.subject.human_friendly,
        )
        out = signers.sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), meta, signer=signer)
        return SignedPdf(out.getvalue(), cert.subject.human_friendly)


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    field: str
    signer: str
    signed_at: str
    intact: bool
    valid: bool
    trusted: bool | None  # None: no trust roots were given
    covers_whole_file: bool
    summary: str

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.covers_whole_file and self.trusted is not False


class VerifyError(ValueError):
    """The file is not a signed PDF that can be checked."""


def verify_pdf(data: bytes, trust_roots: list[Path] | None = None) -> list[SignatureCheck]:
    """Check every signature of a PDF (integrity, coverage, trust). Raises :class:`VerifyError` if there is none."""
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    roots = []
    for path in trust_roots or []:
        raw = Path(path).read_bytes()
        if asn1_pem.detect(raw):
            raw = asn1_pem.unarmor(raw)[2]
        roots.append(asn1_x509.Certificate.load(raw))
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise VerifyError(f"not a readable PDF: {exc}") from exc
    if not signatures:
        raise VerifyError("the PDF carries no signature")
    checks = []
    for sig in signatures:
        context = ValidationContext(trust_roots=roots, allow_fetching=False)
        try:
            status = validate_pdf_signature(sig, context)
        except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
            checks.append(SignatureCheck(sig.field_name, "", "", False, False, False if roots else None, False,
                                         f"signature cannot be validated: {exc}"))
            continue
        whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        signer = status.signing_cert.subject.human_friendly if status.signing_cert else ""
        when = status.signer_reported_dt.isoformat() if status.signer_reported_dt else ""
        checks.append(SignatureCheck(sig.field_name, signer, when, bool(status.intact), bool(status.valid),
                                     bool(status.trusted) if roots else None, whole, status.summary()))
    return checks


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def create_demo_pki(data_dir: Path, usernames: dict[str, str] | list[str], *, organisation: str = "Open LIS Demo",
                    days: int = 825) -> Path:
    """A demo CA and a PKCS#12 signing certificate per user under ``<data_dir>/pki`` (idempotent).

    ``usernames`` maps username -> full name (the certificate's common name) or is a list of usernames.
    Returns the pki directory: ``ca.pem`` (trust root for ``lis report verify``), ``ca-key.pem``,
    ``users/<username>.p12`` and ``users/<username>.pass``. For demonstrations only: a real lab uses
    certificates from a licensed Vietnamese CA.
    """
    names = usernames if isinstance(usernames, dict) else {u: u for u in usernames}
    root = pki_dir(data_dir)
    users = root / "users"
    users.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key_pem = root / "ca.pem", root / "ca-key.pem"
    now = dt.datetime.now(dt.UTC)
    if ca_pem.exists() and ca_key_pem.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_pem.read_bytes(), password=None)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name(f"{organisation} Root CA", organisation)
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_private(ca_key_pem, ca_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    for username, full_name in names.items():
        p12_path, pass_path = users / f"{username}.p12", users / f"{username}.pass"
        if p12_path.exists() and pass_path.exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name(full_name or username, organisation))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        passphrase = secrets.token_urlsafe(18).encode()
        data = pkcs12.serialize_key_and_certificates(
            username.encode(), key, cert, [ca_cert], serialization.BestAvailableEncryption(passphrase))
        _write_private(p12_path, data)
        _write_private(pass_path, passphrase)
        log.info("demo signing certificate created for %s", username)
    return root
