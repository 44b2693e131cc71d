"""Self-signed TLS certificates for the loopback test servers.

The certificate is made with the ``openssl`` command line (no Python crypto
dependency).  It is valid for ``localhost``, ``127.0.0.1`` and ``::1`` and is its
own CA, so a client verifies it with ``ssl.create_default_context(cafile=certfile)``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["make_self_signed_cert"]

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no

[dn]
CN = localhost
O = lapakd test servers

[v3]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def make_self_signed_cert(directory: Path | str, name: str = "server") -> tuple[str, str]:
    """Write ``<name>.crt`` and ``<name>.key`` into *directory*; return their paths.

    Uses a private openssl config, so the system's openssl.cnf does not matter.
    The key is an unencrypted P-256 EC key (generated instantly).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not installed: apt-get install openssl")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cnf = directory / f"{name}-openssl.cnf"
    certfile = directory / f"{name}.crt"
    keyfile = directory / f"{name}.key"
    cnf.write_text(_OPENSSL_CNF)
    cmd = [
        openssl,
        "req",
        "-x509",
        "-config",
        str(cnf),
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-sha256",
        "-days",
        "3650",
        "-keyout",
        str(keyfile),
        "-out",
        str(certfile),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl failed ({proc.returncode}): {proc.stderr.strip()}")
    keyfile.chmod(0o600)
    return str(certfile), str(keyfile)
