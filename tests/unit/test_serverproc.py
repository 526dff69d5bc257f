"""The test server helper cleans up the folder it made (115 were left in /tmp by earlier runs),
and leaves alone a folder it was given."""

from __future__ import annotations

import gc

from tests.serverproc import ServerProcess


def test_a_server_folder_it_made_goes_when_the_server_object_does(tmp_path):
    server = ServerProcess()
    made = server.data
    (made / "store").mkdir()
    assert made.is_dir()
    del server
    gc.collect()
    assert not made.exists()

    given = ServerProcess(data=tmp_path)
    del given
    gc.collect()
    assert tmp_path.is_dir()
