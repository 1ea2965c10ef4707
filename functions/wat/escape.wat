;; Escape: tries to reach outside the sandbox and exits with the WASI errno it got back,
;; or 100 + n if attempt n unexpectedly succeeded. Attempts, in order: find a preopened
;; directory (fd 3), open a file relative to fd 3, accept on a socket (fd 3), and sleep
;; (poll_oneoff on a clock). Expected: exit code 8 (EBADF) for the first three, 58
;; (ENOTSUP) for the sleep; the test calls it with the attempt number as input's first byte.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept"
    (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 512) "/etc/passwd")
  (func $outcome (param $errno i32) (param $attempt i32)
    (if (i32.eqz (local.get $errno))
      (then (call $proc_exit (i32.add (i32.const 100) (local.get $attempt)))))
    (call $proc_exit (local.get $errno)))
  (func (export "_start")
    (local $which i32)
    ;; Read the first byte of input: '1'..'4'.
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $which (i32.sub (i32.load8_u (i32.const 64)) (i32.const 48)))
    (if (i32.eq (local.get $which) (i32.const 1))
      (then (call $outcome (call $fd_prestat_get (i32.const 3) (i32.const 128)) (i32.const 1))))
    (if (i32.eq (local.get $which) (i32.const 2))
      (then (call $outcome
        (call $path_open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 11)
          (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 128))
        (i32.const 2))))
    (if (i32.eq (local.get $which) (i32.const 3))
      (then (call $outcome (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 128)) (i32.const 3))))
    ;; 4: one clock subscription (48 bytes at 256) asking for a 10-second sleep.
    (i64.store (i32.const 256) (i64.const 1))          ;; userdata
    (i32.store8 (i32.const 264) (i32.const 0))         ;; tag: clock
    (i32.store (i32.const 272) (i32.const 1))          ;; clock id: monotonic
    (i64.store (i32.const 280) (i64.const 10000000000)) ;; timeout, ns
    (i64.store (i32.const 288) (i64.const 0))          ;; precision
    (i32.store16 (i32.const 296) (i32.const 0))        ;; flags: relative
    (call $outcome
      (call $poll_oneoff (i32.const 256) (i32.const 384) (i32.const 1) (i32.const 128))
      (i32.const 4))))
