;; Echo: writes its input (the event) back unchanged. The smallest useful WASI command,
;; and the one the invocation benchmark runs.
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; 5 pages: 16 bytes of scratch (an iovec and a count), then the input.
  (memory (export "memory") 5)

  ;; Writes memory[ptr, ptr+len) to fd 1, however many calls that takes.
  (func $write (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (br_if $done (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
        (br $more))))

  ;; Reads all of stdin to address 16; returns its length.
  (func $read_all (result i32)
    (local $total i32)
    (block $done
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 16) (local.get $total)))
        (i32.store (i32.const 4) (i32.sub (i32.const 327664) (local.get $total)))
        (br_if $done (i32.eqz (i32.load (i32.const 4))))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $total (i32.add (local.get $total) (i32.load (i32.const 8))))
        (br $more)))
    (local.get $total))

  (func (export "_start")
    (call $write (i32.const 16) (call $read_all))))
