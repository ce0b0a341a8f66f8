// Test support: a qemu-storage-daemon whose disks are qcow2 chains on thin
// storage in miniature (a raw window over a bigger file), each disk exported
// over NBD under its name, for the threshold tests.
#pragma once

#include <support/qemu.hpp>

#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/manager.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qmp_support {

// A storage daemon with disks whose storage is a raw window (thin storage in
// miniature) under a qcow2 chain, each exported over NBD under its disk name.
struct thin_vm {
    temp_dir dir;
    std::unique_ptr<qemu_instance> q;
    const qemu_build& b;
    qemu_config cfg;

    // disks: name -> chain depth. Node names: <disk>-<i>-fmt, <disk>-<i>-thin, <disk>-<i>-file.
    thin_vm(const qemu_build& build, std::vector<std::pair<std::string, int>> disks, std::uint64_t window = 64u << 20)
        : thin_vm(build, std::move(disks), window, false) {}

    /// A guest instead of a storage daemon: a system emulator (started
    /// paused, `cont` runs it) whose disks are IDE disks with werror=enospc,
    /// and a boot sector that writes the first disk from start to end in
    /// 32 KiB requests, then halts. A full window pauses it (io-error).
    struct guest_t {};
    static constexpr guest_t guest{};
    thin_vm(guest_t, const qemu_build& build, std::vector<std::pair<std::string, int>> disks, std::uint64_t window,
            const std::string& disk_size)
        : thin_vm(build, std::move(disks), window, true, disk_size) {}

private:
    thin_vm(const qemu_build& build, std::vector<std::pair<std::string, int>> disks, std::uint64_t window, bool with_guest,
            const std::string& disk_size = "64M")
        : b(build) {
        bool first = true;
        if (with_guest) {
            cfg.kind = qemu_kind::system;
            cfg.machine = "pc";
            const std::string boot = dir.file("boot.img");
            {
                std::ofstream f(boot, std::ios::binary);
                std::string sector(512, '\0');
                for (std::size_t i = 0; i < sizeof(boot_sector); ++i) sector[i] = static_cast<char>(boot_sector[i]);
                sector[510] = '\x55';
                sector[511] = static_cast<char>(0xaa);
                f << sector;
            }
            run_checked({"truncate", "-s", "1M", boot});
            cfg.blockdevs.push_back(R"({"driver":"file","node-name":"boot-file","filename":")" + boot + "\"}");
            cfg.blockdevs.push_back(R"({"driver":"raw","node-name":"boot","file":"boot-file"})");
            cfg.extra.insert(cfg.extra.end(), {"-device", "ide-hd,drive=boot,bus=ide.0,unit=0,bootindex=0"});
            cfg.extra.insert(cfg.extra.end(), {"-chardev", "file,id=guestlog,path=" + dir.file("guest.log"), "-device",
                                               "isa-debugcon,iobase=0xe9,chardev=guestlog", "-chardev",
                                               "file,id=bioslog,path=" + dir.file("bios.log"), "-device",
                                               "isa-debugcon,iobase=0x402,chardev=bioslog"});
            static const char* const slots[] = {"bus=ide.1,unit=0", "bus=ide.1,unit=1", "bus=ide.0,unit=1"};
            if (disks.size() > 3) throw std::invalid_argument("a thin_vm guest has at most 3 disks");
            for (std::size_t i = 0; i < disks.size(); ++i)
                cfg.extra.insert(cfg.extra.end(), {"-device", "ide-hd,drive=" + disks[i].first + "-" +
                                                                 std::to_string(disks[i].second - 1) + "-fmt," + slots[i] +
                                                                 ",id=" + disks[i].first + ",werror=enospc"});
        }
        for (auto& [name, depth] : disks) {
            auto files = make_chain(b, dir, name, depth, disk_size);
            for (int i = 0; i < depth; ++i) {
                std::string n = name + "-" + std::to_string(i);
                run_checked({"truncate", "-s", "256M", files[i]});  // room behind the window
                cfg.blockdevs.push_back(R"({"driver":"file","node-name":")" + n + R"(-file","filename":")" + files[i] + "\"}");
                cfg.blockdevs.push_back(R"({"driver":"raw","node-name":")" + n + R"(-thin","file":")" + n +
                                        R"(-file","offset":0,"size":)" + std::to_string(window) + "}");
                std::string fmt = R"({"driver":"qcow2","node-name":")" + n + R"(-fmt","file":")" + n + "-thin\"";
                if (i > 0) fmt += R"(,"backing":")" + name + "-" + std::to_string(i - 1) + "-fmt\"";
                cfg.blockdevs.push_back(fmt + "}");
            }
            std::string top = name + "-" + std::to_string(depth - 1) + "-fmt";
            if (with_guest) continue;
            if (first) {
                cfg.nbd_export_node = top;  // exported as "vda"
                first = false;
            } else {
                cfg.extra.insert(cfg.extra.end(), {"--export", "nbd,id=e-" + name + ",node-name=" + top + ",writable=on,name=" + name});
            }
        }
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }

    // The guest's boot sector (i386 real mode, loaded at 0x7c00; the 0x55aa
    // signature is added above). It reports on port 0xe9 (guest_log()): one
    // '.' per request written; 'R' and the status byte when BIOS failed a
    // request, which it then resets the disk for and retries (at most 3
    // times in a row); 'E' and the status byte when it stops (status 1:
    // past the end of the disk).
    //   cli; xor ax,ax; mov ds,ax; mov ss,ax; mov sp,0x7c00; sti; xor bp,bp
    //   1: mov word [dap+2],64; mov si,dap; mov ax,0x4300; mov dl,0x81; int 0x13 ; extended write, disk 0x81
    //      jc 2f; mov al,'.'; out 0xe9,al
    //      add dword [dap+8],64; adc dword [dap+12],0; xor bp,bp; jmp 1b
    //   2: cmp ah,1; je 3f; inc bp; cmp bp,3; ja 3f
    //      mov bl,ah; mov al,'R'; out 0xe9,al; mov al,bl; out 0xe9,al
    //      xor ah,ah; mov dl,0x81; int 0x13; jmp 1b                          ; reset the disk, retry
    //   3: mov bl,ah; mov al,'E'; out 0xe9,al; mov al,bl; out 0xe9,al
    //   4: hlt; jmp 4b
    //   dap: db 16,0; dw 64; dw 0,0x1000; dq 0                  ; 64 sectors from 1000:0000, LBA
    static constexpr unsigned char boot_sector[] = {
        0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc, 0x00, 0x7c, 0xfb, 0x31, 0xed, 0xc7, 0x06, 0x5f, 0x7c, 0x40,
        0x00, 0xbe, 0x5d, 0x7c, 0xb8, 0x00, 0x43, 0xb2, 0x81, 0xcd, 0x13, 0x72, 0x14, 0xb0, 0x2e, 0xe6, 0xe9, 0x66,
        0x83, 0x06, 0x65, 0x7c, 0x40, 0x66, 0x83, 0x16, 0x69, 0x7c, 0x00, 0x31, 0xed, 0xeb, 0xda, 0x80, 0xfc, 0x01,
        0x74, 0x18, 0x45, 0x83, 0xfd, 0x03, 0x77, 0x12, 0x88, 0xe3, 0xb0, 0x52, 0xe6, 0xe9, 0x88, 0xd8, 0xe6, 0xe9,
        0x30, 0xe4, 0xb2, 0x81, 0xcd, 0x13, 0xeb, 0xbd, 0x88, 0xe3, 0xb0, 0x45, 0xe6, 0xe9, 0x88, 0xd8, 0xe6, 0xe9,
        0xf4, 0xeb, 0xfd, 0x10, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00};

public:
    /// What the guest's boot sector reported (see boot_sector); the
    /// firmware's own log is in bios_log().
    std::string guest_log() const { return dir.file("guest.log"); }
    std::string bios_log() const { return dir.file("bios.log"); }

    asio::local::stream_protocol::endpoint ep() const { return q->qmp_endpoint(); }

    /// QEMU dies (SIGKILL) and starts again on the same socket and images:
    /// a new instance, its thresholds and high-water marks back at 0.
    void restart() {
        q->process().kill_now();
        q.reset();
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }

    /// QEMU starts again with a second QMP monitor (for the side of a test
    /// that must not read the first one's events); returns its socket path.
    std::string with_second_monitor() {
        std::string path = dir.file("second.qmp");
        if (cfg.kind == qemu_kind::system)
            cfg.extra.insert(cfg.extra.end(), {"-chardev", "socket,path=" + path + ",server=on,wait=off,id=m2", "-mon", "chardev=m2,mode=control"});
        else
            cfg.extra.insert(cfg.extra.end(), {"--chardev", "socket,path=" + path + ",server=on,wait=off,id=m2", "--monitor", "chardev=m2"});
        restart();
        return path;
    }

    std::uint64_t threshold_of(qmp::sync_client& cl, const std::string& node);
};

/// QEMU's write_threshold of `node` (0: none armed), read through `cl`;
/// throws when QEMU has no such node.
inline std::uint64_t threshold_in_qemu(qmp::sync_client& cl, const std::string& node) {
    for (const auto& n : cl.execute(qmp::query_named_block_nodes{true}))
        if (n.node_name == std::optional<std::string>(node)) return static_cast<std::uint64_t>(n.write_threshold);
    throw std::runtime_error("QEMU has no node " + node);
}

/// The same on a connection of its own to `monitor` (a second monitor:
/// the first one is the tested code's).
inline std::uint64_t threshold_in_qemu(const std::string& monitor, const std::string& node) {
    qmp::sync_client side;
    side.connect(asio::local::stream_protocol::endpoint(monitor));
    return threshold_in_qemu(side, node);
}

inline std::uint64_t thin_vm::threshold_of(qmp::sync_client& cl, const std::string& node) { return threshold_in_qemu(cl, node); }

/// Manager options with a catalog of `name -> disk id` entries.
inline qmp::threshold_manager_options named(std::vector<std::pair<std::string, std::string>> entries) {
    qmp::threshold_manager_options o;
    for (auto& [k, v] : entries) o.service.tracker.catalog.entries[k] = v;
    o.client.command_timeout = std::chrono::seconds(30);
    return o;
}

/// Polls until `n` events came or `total` passed.
inline std::vector<qmp::threshold_event> poll_until(qmp::threshold_manager& m, std::size_t n,
                                                    std::chrono::milliseconds total = std::chrono::seconds(20)) {
    std::vector<qmp::threshold_event> got;
    auto deadline = std::chrono::steady_clock::now() + total;
    while (got.size() < n && std::chrono::steady_clock::now() < deadline)
        for (auto& e : m.poll(std::chrono::milliseconds(500))) got.push_back(e);
    return got;
}

}  // namespace qmp_support
