"""ntknb.paths: the one rule that finds the checkout's notebooks/, its data, claims and bibliography."""

from ntknb import paths


def test_the_checkout_beside_the_package_wins():
    assert paths.NOTEBOOKS == paths.find_notebooks()
    assert (paths.CLAIMS).is_dir() and (paths.BIB).is_file() and (paths.REPO_ROOT / "_toc.yml").is_file()
    assert paths.DATA == paths.NOTEBOOKS / "data" and paths.REPO_ROOT == paths.NOTEBOOKS.parent


def test_a_wheel_install_finds_the_checkout_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", tmp_path / "site-packages")  # no notebooks/ beside it
    checkout = tmp_path / "checkout"
    (checkout / "notebooks" / "claims").mkdir(parents=True)
    assert paths.find_notebooks(checkout / "notebooks") == checkout / "notebooks"  # a chapter's kernel
    assert paths.find_notebooks(checkout) == checkout / "notebooks"  # a command in the checkout's root
    assert paths.find_notebooks(tmp_path) == tmp_path / "site-packages" / "notebooks"  # none: the first
    (checkout / "notebooks" / "claims").rmdir()
    assert paths.find_notebooks(checkout) == tmp_path / "site-packages" / "notebooks"  # claims/ is the mark
