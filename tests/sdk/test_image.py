"""The OCI image (scripts/image/build.sh): built offline with umoci, it unpacks to a root
filesystem that holds weir and what it loads and nothing else, and weir runs from it alone
(chrooted, as its non-root user) and serves the real kfp.Client.

scripts/test.sh builds the image from the release binary and names it in WEIR_IMAGE_DIR; run
alone, this builds one from the binary under test.
"""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import kfp
import pytest

from conftest import REPO_ROOT, free_port, http_status

BUILD = REPO_ROOT / 'scripts' / 'image' / 'build.sh'


@pytest.fixture(scope='module')
def image(weir_bin, tmp_path_factory) -> Path:
    given = os.environ.get('WEIR_IMAGE_DIR')
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp('image')
    built = subprocess.run(['bash', str(BUILD), str(weir_bin), str(out)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture(scope='module')
def bundle(image, tmp_path_factory) -> Path:
    index = json.loads((image / 'layout' / 'index.json').read_text())
    tags = [m['annotations']['org.opencontainers.image.ref.name'] for m in index['manifests']]
    assert len(tags) == 1, tags
    target = tmp_path_factory.mktemp('bundle') / 'weir'
    subprocess.run(['umoci', 'unpack', '--image', f'{image / "layout"}:{tags[0]}', str(target)], check=True,
                   capture_output=True)
    return target


def test_the_image_is_weir_alone_and_small(image, bundle):
    config = json.loads((bundle / 'config.json').read_text())
    assert config['process']['user']['uid'] == 65532 and config['process']['user']['gid'] == 65532
    assert config['process']['args'] == ['/usr/local/bin/weir', 'server', '--listen', '0.0.0.0:8888']
    root = bundle / 'rootfs'
    assert not (root / 'bin' / 'sh').exists() and not (root / 'usr' / 'bin').exists(), 'no shell, no tools'
    files = sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())
    assert 'usr/local/bin/weir' in files and 'etc/ssl/certs/ca-certificates.crt' in files, files
    assert all(f.startswith(('usr/local/bin/', 'etc/', 'lib', 'usr/lib')) for f in files), files
    # One layer; the whole image (every blob) well under a typical base image's size.
    blobs = sum(p.stat().st_size for p in (image / 'layout' / 'blobs').rglob('*') if p.is_file())
    assert blobs < 64 * 1024 * 1024, blobs
    assert list(image.glob('weir-*.oci.tar')), 'the archive to copy to a registry'
    assert config['annotations']['org.opencontainers.image.title'] == 'weir', config.get('annotations')


def test_weir_runs_from_the_image_alone_as_its_user(bundle, tmp_path):
    root = bundle / 'rootfs'
    data = root / 'var' / 'lib' / 'weir'
    port = free_port()
    process = subprocess.Popen(
        [shutil.which('chroot'), '--userspec=65532:65532', str(root), '/usr/local/bin/weir', 'server', '--listen',
         f'127.0.0.1:{port}', '--data-dir', '/var/lib/weir'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={'PATH': '/usr/local/bin'})
    try:
        base = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + 60
        while http_status(f'{base}/readyz') != 200:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, 'weir did not become ready'
            time.sleep(0.2)
        client = kfp.Client(host=base)
        experiment = client.create_experiment('from-the-image')
        assert client.get_experiment(experiment_id=experiment.experiment_id).display_name == 'from-the-image'
    finally:
        process.terminate()
        process.wait(timeout=30)
    # It wrote its storage where the image gives its user room, and only there.
    assert any(data.iterdir()), 'weir keeps its default storage in /var/lib/weir' 
