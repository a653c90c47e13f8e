"""conv2's fused backward with and without dx (as training runs it and as its dw-only twin), batch
256, 1 thread, min of REPS calls each (default 40, interleaved); the difference is dx's cost.
python results/bench-epyc-avx2-2026-12-01-s18/conv2_bwd_dx.py [BUILD] [REPS]  (BUILD: a checkout
built in place; none or "": the installed hpclars).  The problem is session 17's bwd_with_dx.py's
(which prints its share of nonzero windows: 70%)."""
import sys, numpy as np, time
if len(sys.argv) > 1 and sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x=rng.random((n,6,14,14),dtype=np.float32); w=(rng.standard_normal((16,6,5,5))*0.1).astype(np.float32); b=np.zeros(16,np.float32)
out=np.empty((n,16,7,7),np.float32); idx=np.empty((n,16,7,7),np.uint8)
g=rng.standard_normal((n,16,7,7)).astype(np.float32)
work=np.empty(conv.conv2d_pool_relu_work_size(n,6,14,14,16,5,1),np.float32)
conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1)
dw=np.zeros_like(w); db=np.zeros_like(b); dx=np.empty_like(x)
reps=int(sys.argv[2]) if len(sys.argv)>2 else 40
a=[];bb=[]
for _ in range(reps):
    t=time.perf_counter(); conv.conv2d_pool_relu_backward(x,w,out,idx,g,dx,dw,db,work,1); a.append(time.perf_counter()-t)
    t=time.perf_counter(); conv.conv2d_pool_relu_backward(x,w,out,idx,g,None,dw,db,work,1); bb.append(time.perf_counter()-t)
a=np.array(a)*1e3; bb=np.array(bb)*1e3
print("%s with dx %.3f  without %.3f  dx part %.3f (min)"%(sys.argv[1][-4:] if len(sys.argv)>1 else "this", a.min(), bb.min(), a.min()-bb.min()))
