"""Each convolution, pooling and ReLU kernel alone (batch 256, 1 thread, median of 15), unfused, in this build
or (PYTHONPATH=<checkout built in place>) another:  (cd /tmp && PYTHONPATH=/tmp/kb/base python <this file>)"""
import numpy as np, time
from hpclars.kernels import conv, pool, elementwise
rng=np.random.default_rng(0)
def t(f, r=15):
    f(); ts=[]
    for _ in range(r):
        a=time.perf_counter(); f(); ts.append(time.perf_counter()-a)
    return np.median(ts)*1e3
n=256
for cin,cout,h in ((1,6,28),(6,16,14)):
    x=rng.standard_normal((n,cin,h,h),dtype=np.float32); w=(rng.standard_normal((cout,cin,5,5),dtype=np.float32)*.2); b=np.zeros(cout,np.float32)
    a=np.empty((n,cout,h,h),np.float32); out=np.empty((n,cout,h//2,h//2),np.float32); idx=np.empty(out.shape,np.uint8)
    work=np.empty(conv.conv2d_work_size(n,cin,h,h,cout,5),np.float32)
    dw=np.zeros_like(w); db=np.zeros_like(b); dx=np.empty_like(x)
    fl=2*n*cout*cin*25*h*h/1e9
    tc=t(lambda: conv.conv2d_forward(x,w,b,a,work))
    tp=t(lambda: pool.maxpool2_forward(a,out,idx))
    tr=t(lambda: elementwise.relu_forward(out,out))
    tb=t(lambda: conv.conv2d_backward(x,w,a,None,dw,db,work))
    tbx=t(lambda: conv.conv2d_backward(x,w,a,dx,dw,db,work))
    g=np.empty_like(out); da=np.empty_like(a)
    tpb=t(lambda: pool.maxpool2_backward(out,idx,da))
    trb=t(lambda: elementwise.relu_backward(out,out,g))
    print(f"cin{cin} cout{cout}: conv fwd {tc:.2f} ms ({fl/tc*1e3:.1f} GF/s) pool {tp:.2f} relu {tr:.2f} | bwd dw {tb:.2f} ({fl/tb*1e3:.1f}) dw+dx {tbx:.2f} poolbwd {tpb:.2f} relubwd {trb:.2f}")
