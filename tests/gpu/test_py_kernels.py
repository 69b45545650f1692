#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""libkvmm's kernels through the Python binding, with torch tensors: decode
attention over kvmm views of the three layouts (fp16, bf16; head_dim 64 and
128; GQA; slots chosen by seq_ids) against a float32 reference, and the tier
path's pack/unpack round trip over a sequence's pages."""
from pygpu import require_cuda, require_torch, skip_program

BE = require_cuda()
torch = require_torch()

import kvmm  # noqa: E402

if not kvmm.has("kvmm_kernels_open"):
    skip_program("this libkvmm has no kernels API")
from kvmm.kernels import Kernels, pack_size  # noqa: E402

try:
    KER = Kernels(BE)
except kvmm.KvmmError as e:
    skip_program(f"kernels not available: {e}")

from tap import run  # noqa: E402

MiB = 1 << 20
HKV, HQ = 2, 8


def cache(layout, dtype, dim):
    return kvmm.Cache(BE, num_layers=2, num_kv_heads=HKV, head_dim=dim, dtype=dtype,
                      layout=layout, max_seqs=6, max_tokens=2048, budget_bytes=512 * MiB)


def put(view, data):
    """Write data [n, H, D] into a sequence view's tensor (paged or not)."""
    t = torch.from_dlpack(view)
    n = data.shape[0]
    if not view.paged:
        t[:n].copy_(data)
        return
    tpp = view.tokens_per_page
    for p in range(-(-n // tpp)):
        m = min(tpp, n - p * tpp)
        t[p, :m].copy_(data[p * tpp:p * tpp + m])


def test_decode_matches_reference():
    lens = [1, 100, 257, 700]
    for layout in ("layer-major", "token-major", "page-major"):
        for dtype, tdt, tol in (("float16", torch.float16, 4e-3), ("bfloat16", torch.bfloat16,
                                                                    3e-2)):
            for dim in (64, 128):
                with cache(layout, dtype, dim) as c:
                    spare = c.open()  # slot 0 stays out of the batch: seq_ids matter
                    seqs = [c.open() for _ in lens]
                    c.step([(s, n) for s, n in zip(seqs, lens)])
                    ks, vs = [], []
                    for s, n in zip(seqs, lens):
                        k = torch.randn(n, HKV, dim, device="cuda").to(tdt)
                        v = torch.randn(n, HKV, dim, device="cuda").to(tdt)
                        put(s.view(1, "k"), k)
                        put(s.view(1, "v"), v)
                        ks.append(k)
                        vs.append(v)
                    b = len(lens)
                    q = torch.randn(b, HQ, dim, device="cuda").to(tdt)
                    out = torch.empty_like(q)
                    sl = torch.tensor(lens, dtype=torch.int32, device="cuda")
                    ids = torch.tensor([s.slot for s in seqs], dtype=torch.int32, device="cuda")
                    KER.attn_decode(c.view(1, "k"), c.view(1, "v"), q=q.data_ptr(),
                                    out=out.data_ptr(), seq_lens=sl.data_ptr(),
                                    seq_ids=ids.data_ptr(), batch=b, num_q_heads=HQ,
                                    max_len=max(lens),
                                    stream=torch.cuda.current_stream().cuda_stream)
                    torch.cuda.synchronize()
                    for i in range(b):
                        kk = ks[i].float().repeat_interleave(HQ // HKV, 1).transpose(0, 1)
                        vv = vs[i].float().repeat_interleave(HQ // HKV, 1).transpose(0, 1)
                        att = (q[i].float().unsqueeze(1) @ kk.transpose(1, 2)) / dim ** 0.5
                        ref = (att.softmax(-1) @ vv).squeeze(1)
                        err = float((out[i].float() - ref).abs().max())
                        assert err < tol, (layout, dtype, dim, lens[i], err)
                    spare.close()
                    for s in seqs:
                        s.close()


def test_bad_arguments_are_refused_before_launch():
    with cache("token-major", "float16", 64) as c:
        q = torch.zeros(1, 3, 64, device="cuda", dtype=torch.float16)  # 3 % 2 != 0
        sl = torch.ones(1, dtype=torch.int32, device="cuda")
        try:
            KER.attn_decode(c.view(0, "k"), c.view(0, "v"), q=q.data_ptr(), out=q.data_ptr(),
                            seq_lens=sl.data_ptr(), batch=1, num_q_heads=3, max_len=1)
        except kvmm.KvmmError as e:
            assert e.errno == 22 and e.detail, e  # EINVAL, with the argument named
        else:
            raise AssertionError("3 query heads over 2 KV heads accepted")


def test_pack_unpack_roundtrip():
    with cache("page-major", "bfloat16", 128) as c, c.open() as s:
        s.step(300)
        data = torch.randn(300, HKV, 128, device="cuda").to(torch.bfloat16)
        put(s.view(0, "k"), data)
        v = s.view(0, "k")
        page = v.struct.page_stride
        runs = [(v.data + p * page, page) for p in range(-(-300 // v.tokens_per_page))]
        size = pack_size(runs)
        staging = torch.empty(size, dtype=torch.uint8, device="cuda")
        KER.pack(runs, staging.data_ptr(), size)
        torch.cuda.synchronize()
        torch.from_dlpack(v).zero_()
        KER.unpack(runs, staging.data_ptr(), size)
        torch.cuda.synchronize()
        got = torch.frombuffer(s.read(0, "k", 0, 300), dtype=torch.bfloat16).view(300, HKV, 128)
        assert torch.equal(got, data.cpu())


if __name__ == "__main__":
    run(globals())
