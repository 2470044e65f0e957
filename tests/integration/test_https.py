"""HTTPS (--set tls_cert_dir=DIR): the same routes on an HTTPS frontend, checked against the CA
(not skipped), and disco-https-only answering plain HTTP with a 301 to HTTPS."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit import take_port

from .apps import Apps, get, start_routed
from .conftest import Stack


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def make_certificates(tmp: Path) -> tuple[Path, Path]:
    """A CA and a certificate for 127.0.0.1 and shop.example.com signed by it; returns (CA, cert dir)."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        return subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True, timeout=30)

    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=disco test CA")
    run("req", *key, "-keyout", "site.key", "-out", "site.csr", "-subj", "/CN=127.0.0.1")
    (tmp / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:shop.example.com\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        "site.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "site.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    certs = tmp / "certs"
    certs.mkdir()
    (certs / "site.pem").write_text((tmp / "site.crt").read_text() + (tmp / "site.key").read_text())
    return tmp / "ca.pem", certs


def test_https_frontend_with_the_same_routes_and_https_only(stack: Stack, apps: Apps, tmp_path: Path):
    ca, certs = make_certificates(tmp_path)
    https_port = take_port()
    apps.start("web", "web-1")
    apps.start("shop", "shop-1", ("urlprefix-/secure",), meta={"disco-https-only": "true"})
    start_routed(stack, ["web", "shop"], f"tls_cert_dir={certs}", f"https_port={https_port}", expect=2)
    https = f"https://127.0.0.1:{https_port}"

    response = requests.get(f"{https}/secure/cart", verify=str(ca), timeout=3)
    assert (response.status_code, response.headers["X-Instance"]) == (200, "shop-1")
    response = requests.get(f"{https}/", verify=str(ca), timeout=3)
    assert response.headers["X-Instance"] == "web-1"
    with pytest.raises(requests.exceptions.SSLError):  # the CA is really checked
        requests.get(f"{https}/", timeout=3)

    response = get(stack, "/secure/cart?x=1")  # plain HTTP on an https-only route
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{https_port}/secure/cart?x=1"
    assert get(stack, "/").headers["X-Instance"] == "web-1"  # other routes stay on plain HTTP
    response = requests.get(f"http://127.0.0.1:{stack.lb_port}/secure/cart", verify=str(ca), timeout=3)
    assert response.headers["X-Instance"] == "shop-1" and response.url.startswith("https://")  # followed
