"""conv1's fused forward, batch 256, 1 thread, in this build or, given a path, in a checkout built in
place there (git worktree add ... && python setup.py build_ext --inplace).  Alternate the two, from /tmp:
    python results/bench-epyc-avx2-2026-12-01-s15/conv1_fwd_ab.py ""; python results/bench-epyc-avx2-2026-12-01-s15/conv1_fwd_ab.py /tmp/kb/base
Default: float32 and uint8 input, warm and "cold" (after a 4 MB write), median of 40 each.
--min: float32 and uint8 input one after the other, min of 100 each (was conv1_fwd_min.py)."""
import sys, numpy as np, time
if sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x8=rng.integers(0,256,(n,1,28,28),dtype=np.uint8); x=np.multiply(x8,np.float32(1/255),dtype=np.float32)
w=(rng.standard_normal((6,1,5,5))*0.2).astype(np.float32); b=np.zeros(6,np.float32)
out=np.empty((n,6,14,14),np.float32); idx=np.empty((n,6,14,14),np.uint8)
work=np.empty(conv.conv2d_pool_relu_work_size(n,1,28,28,6,5,1),np.float32)
who = "base " if sys.argv[1] else "new  "
if "--min" in sys.argv:
    ts=[];tu=[]
    for r in range(100):
        t=time.perf_counter(); conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1); ts.append(time.perf_counter()-t)
        t=time.perf_counter(); conv.conv2d_pool_relu_forward(x8,w,b,out,idx,work,1,1/255); tu.append(time.perf_counter()-t)
    print(who+"min f32 %.3f u8 %.3f"%(min(ts)*1e3,min(tu)*1e3))
    sys.exit()
junk=np.zeros(1_000_000,np.float32)
res=[]
for label,args in [("f32",(x,w,b,out,idx,work,1)),("u8",(x8,w,b,out,idx,work,1,1/255))]:
  for cold in (0,1):
    ts=[]
    for r in range(40):
        conv.conv2d_pool_relu_forward(*args)
        if cold: junk+=1
        t=time.perf_counter(); conv.conv2d_pool_relu_forward(*args); ts.append(time.perf_counter()-t)
    res.append("%s%s %.3f"%(label,"-cold" if cold else "", np.median(ts)*1e3))
print(who+"  ".join(res))
