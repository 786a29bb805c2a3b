"""RFC 9162 Merkle tree: the reference vectors of Certificate Transparency and proofs of every shape."""

import pytest

from steward.governance import merkle

# Leaves and roots from the Certificate Transparency test suite (RFC 6962 / RFC 9162 tree,
# certificate-transparency merkle_tree_test.cc; the same vectors in transparency-dev/merkle).
LEAVES = [bytes.fromhex(h) for h in
          ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index 0-based, tree size, audit path)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
# (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
HASHES = [merkle.leaf_hash(x) for x in LEAVES]


def test_reference_roots_for_every_size():
    frontier = merkle.Frontier()
    assert merkle.root([]).hex() == ROOTS[0] == frontier.root().hex()
    for n in range(1, 9):
        frontier.append(HASHES[n - 1])
        assert merkle.root(HASHES[:n]).hex() == ROOTS[n]
        assert merkle.Tree(HASHES).root(n).hex() == ROOTS[n]
        assert frontier.root().hex() == ROOTS[n]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_reference_inclusion_proofs(index, size, path):
    proof = merkle.Tree(HASHES[:size]).inclusion_proof(index)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size])
    assert merkle.verify_inclusion(index, size, HASHES[index], proof, root)
    assert not merkle.verify_inclusion(index, size, HASHES[index], proof, bytes.fromhex(ROOTS[size - 1]))
    assert not merkle.verify_inclusion(index, size, HASHES[(index + 1) % size], proof, root)
    if size > 1:
        assert not merkle.verify_inclusion(index, size, HASHES[index], proof[:-1], root)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_reference_consistency_proofs(old, new, path):
    proof = merkle.Tree(HASHES[:new]).consistency_proof(old)
    assert [p.hex() for p in proof] == path
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)
    if old != new:
        assert not merkle.verify_consistency(old, new, bytes.fromhex(ROOTS[old - 1]), new_root, proof)
        assert not merkle.verify_consistency(old, new, old_root, bytes.fromhex(ROOTS[new - 1]), proof)
        assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])


def test_every_proof_of_every_tree_up_to_40_leaves():
    leaves = [merkle.leaf_hash(bytes([i, i * 7 % 256])) for i in range(40)]
    tree = merkle.Tree(leaves)
    for n in range(1, 41):
        root = tree.root(n)
        assert root == merkle.root(leaves[:n])
        for i in range(n):
            assert merkle.verify_inclusion(i, n, leaves[i], tree.inclusion_proof(i, n), root)
        for m in range(0, n + 1):
            proof = tree.consistency_proof(m, n)
            assert merkle.verify_consistency(m, n, tree.root(m), root, proof), (m, n)
            if 0 < m < n:
                forked = merkle.root([*leaves[: m - 1], merkle.leaf_hash(b"forged")])
                assert not merkle.verify_consistency(m, n, forked, root, proof), (m, n)


def test_domain_separation_and_frontier_checks():
    # a leaf can never pass for an interior node: the prefixes differ
    a, b = HASHES[1], HASHES[2]
    assert merkle.node_hash(a, b) != merkle.leaf_hash(a + b)
    with pytest.raises(ValueError):
        merkle.Frontier(3, [a])
    with pytest.raises(ValueError):
        merkle.Tree(HASHES).inclusion_proof(8)
