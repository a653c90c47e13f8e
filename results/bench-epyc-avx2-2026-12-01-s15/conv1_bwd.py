"""conv1's fused backward (no dx), batch 256, 1 thread, min of 100.  From /tmp:
python results/bench-epyc-avx2-2026-12-01-s15/conv1_bwd.py [BUILD] (a checkout built in place;
default the installed build)."""
import sys, numpy as np, time
if len(sys.argv) > 1 and sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x=rng.random((n,1,28,28),dtype=np.float32); w=(rng.standard_normal((6,1,5,5))*0.1).astype(np.float32); b=np.zeros(6,np.float32)
out=np.empty((n,6,14,14),np.float32); idx=np.empty((n,6,14,14),np.uint8)
g=rng.standard_normal((n,6,14,14)).astype(np.float32)
work=np.empty(conv.conv2d_pool_relu_work_size(n,1,28,28,6,5,1),np.float32)
conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1)
dw=np.zeros_like(w); db=np.zeros_like(b)
ts=[]
for _ in range(100):
    t=time.perf_counter(); conv.conv2d_pool_relu_backward(x,w,out,idx,g,None,dw,db,work,1); ts.append(time.perf_counter()-t)
print(("base " if len(sys.argv)>1 and sys.argv[1] else "new  ")+"conv1 bwd min %.3f ms"%(min(ts)*1e3))
