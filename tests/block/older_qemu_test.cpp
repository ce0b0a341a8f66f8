// Older QEMUs, played from replies shaped like theirs (tests/data/shape-*,
// see the README there): the graph queries are chosen by what the QEMU
// offers, never by its version; chains and `vda[N]` come out right; and a
// QEMU that names no nodes gets one clear error, not an empty chain.
#include "../support/fake_server.hpp"

#include <qmp/block.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace {

std::string data_file(const std::string& shape, const std::string& name) {
    return std::string(QMP_TEST_DATA_DIR) + "/shape-" + shape + "/" + name + ".json";
}

std::optional<qmp::json> shape_reply(const std::string& shape, const std::string& name) {
    std::ifstream in(data_file(shape, name));
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return qmp::json::parse(ss.str());
}

// A monitor that answers from a shape's replies the way that QEMU would:
// CommandNotFound for a command it lacks, QEMU's "Parameter ... is
// unexpected" for an argument it lacks. It records what it was asked.
struct old_qemu {
    std::string shape;
    qmp_test::fake_server server;
    std::vector<qmp::json> requests;
    std::thread thread;

    explicit old_qemu(std::string s) : shape(std::move(s)) {
        thread = std::thread([this] { serve(); });
    }
    ~old_qemu() { finish(); }

    /// Waits for the client to have closed; then `requests` is complete.
    void finish() {
        if (thread.joinable()) thread.join();
    }

    void serve() {
        server.accept();
        auto ver = shape_reply(shape, "query-version");
        server.send(qmp::json({{"QMP", {{"version", *ver}, {"capabilities", qmp::json::array()}}}}).dump() + "\r\n");
        try {
            while (auto req = server.try_read_message(10000)) {
                requests.push_back(*req);
                answer(*req);
            }
        } catch (const std::exception&) {
            // the client closed the connection: done
        }
    }

    void answer(const qmp::json& req) {
        const std::string cmd = req.value("execute", "");
        const qmp::json args = req.value("arguments", qmp::json::object());
        if (cmd == "qmp_capabilities") return server.reply(req, qmp::json::object());
        const bool nodes = cmd == "query-blockstats" && args.value("query-nodes", false);
        auto reply = shape_reply(shape, nodes ? "query-blockstats-nodes" : cmd);
        if (!reply) return server.reply_error(req, "CommandNotFound", "The command " + cmd + " has not been found");
        // The one argument these shapes take: query-nodes, where they have it.
        for (const auto& [name, value] : args.items()) {
            (void)value;
            if (!(cmd == "query-blockstats" && name == "query-nodes"))
                return server.reply_error(req, "GenericError", "Parameter '" + name + "' is unexpected");
        }
        server.reply(req, *reply);
    }

    std::set<std::string> asked() const {
        std::set<std::string> out;
        for (const auto& r : requests) {
            std::string s = r.value("execute", "");
            const qmp::json args = r.value("arguments", qmp::json::object());
            for (const auto& [name, value] : args.items()) {
                (void)value;
                s += "+" + name;
            }
            out.insert(s);
        }
        return out;
    }
};

}  // namespace

TEST_CASE("older QEMUs: the offers come from the command list, or from a schema the caller has" *
          doctest::test_suite("block")) {
    // A schema says everything, arguments included.
    auto o = qmp::offers_from_schema(qmp::schema_probe(*shape_reply("3.1", "query-qmp-schema")));
    CHECK(!o.graph_command);
    CHECK(o.named_block_nodes);
    CHECK(!o.flat);
    CHECK(o.query_nodes);
    CHECK(o.source == qmp::offers_source::schema);

    // The command list names commands; `flat` is to be tried.
    for (const char* shape : {"3.1", "2.4"}) {
        CAPTURE(std::string(shape));
        auto c = qmp::offers_from_commands(shape_reply(shape, "query-commands")->get<std::vector<qmp::command_info>>());
        CHECK(!c.graph_command);
        CHECK(c.named_block_nodes);
        CHECK(c.flat);
        CHECK(c.query_nodes);  // it has block-set-write-threshold, which came with query-nodes
        CHECK(c.source == qmp::offers_source::commands);
    }
    auto c22 = qmp::offers_from_commands(shape_reply("2.2", "query-commands")->get<std::vector<qmp::command_info>>());
    CHECK(!c22.query_nodes);
}

TEST_CASE("older QEMUs: the chains from the blockstats fallback, without flat, filenames of the storage" *
          doctest::test_suite("block")) {
    struct shape {
        const char* name;
        const char* top;
        const char* top_file;
        const char* base;
        const char* lun;
        std::set<std::string> asked;
    };
    const std::string img = "/var/lib/libvirt/images/";
    // The command list once, `flat` tried once and refused, then the
    // queries these QEMUs have, with the arguments they take; not the
    // per-node query-blockstats: without the graph command the devices'
    // trees are the whole graph.
    const std::set<std::string> asked = {"qmp_capabilities", "query-commands", "query-blockstats",
                                         "query-named-block-nodes+flat", "query-named-block-nodes"};
    for (const shape& s : {shape{"3.1", "#block138", "#block212", "#block389", "#block512", asked},
                           shape{"2.4", "top", "top-file", "base", "lun", asked}}) {
        CAPTURE(std::string(s.name));
        old_qemu q(s.name);
        qmp::sync_client cl;
        cl.connect(q.server.endpoint());
        qmp::driver_cache drivers;
        qmp::graph_query_options opts;
        opts.details = qmp::details_need::fresh;
        auto g = qmp::query_block_graph(cl, opts, &drivers);
        CHECK(g.source() == qmp::graph_source::blockstats);
        REQUIRE(drivers.offers);
        CHECK(!drivers.offers->flat);
        CHECK(drivers.probes == 1);

        qmp::index_registry reg;
        qmp::resolver res;
        res.update(g, reg);
        std::error_code ec;
        const qmp::disk_chain* vda = res.find_disk("drive-virtio-disk0", ec);
        REQUIRE_MESSAGE(vda, ec.message());
        REQUIRE(vda->elements.size() == 2);
        const auto& top = vda->elements[0];
        CHECK(top.format_node == s.top);
        CHECK(top.storage_node == s.top_file);
        CHECK(top.driver == std::optional<std::string>("qcow2"));
        // The file users know, not QEMU's json: pseudo-filename of the format node.
        CHECK(top.filename == std::optional<std::string>(img + "top.qcow2"));
        REQUIRE(top.format_filename);
        CHECK(top.format_filename->rfind("json:", 0) == 0);
        CHECK(top.allocation == std::optional<std::uint64_t>(3221225472u));
        CHECK(top.storage_threshold == std::optional<std::uint64_t>(4ull << 30));
        const auto& base = vda->elements[1];
        CHECK(base.format_node == s.base);
        CHECK(base.driver == std::optional<std::string>("luks"));
        CHECK(base.filename == std::optional<std::string>(img + "luks"));
        CHECK(base.format_filename->find("\"key-secret\"") != std::string::npos);

        // vda[N] names each element, both ways.
        auto r = res.resolve(qmp::target{"drive-virtio-disk0", base.index}, ec);
        REQUIRE_MESSAGE(r, ec.message());
        CHECK(r->element.format_node == s.base);
        auto where = res.locate(s.top_file, ec);
        REQUIRE(where);
        CHECK(where->where.element.index == top.index);
        CHECK(where->node_layer == qmp::layer::storage);

        // Raw over iSCSI: the protocol node has no filename of its own, so
        // its json: description is what there is.
        const qmp::disk_chain* vdb = res.find_disk("drive-virtio-disk1", ec);
        REQUIRE(vdb);
        REQUIRE(vdb->elements.size() == 1);
        CHECK(vdb->elements[0].format_node == s.lun);
        REQUIRE(vdb->elements[0].filename);
        CHECK(vdb->elements[0].filename->find("\"driver\": \"iscsi\"") != std::string::npos);
        CHECK(vdb->elements[0].filename != vdb->elements[0].format_filename);

        // A second snapshot on the same connection asks nothing new of the
        // command list, and the drivers it knows keep the details query away;
        // a details snapshot asks without `flat` at once.
        auto again = qmp::query_block_graph(cl, {}, &drivers);
        CHECK(drivers.probes == 1);
        CHECK(drivers.refreshes == 1);
        CHECK(again.find(s.base)->driver == std::optional<std::string>("luks"));
        auto details = qmp::query_block_graph(cl, opts, &drivers);
        CHECK(details.has_details());
        CHECK(drivers.refreshes == 2);
        cl.close();
        q.finish();
        // No command the QEMU lacks (no graph command), the command list
        // asked once, `flat` refused once.
        CHECK(q.asked() == s.asked);
        // The second snapshot: its cheap query; the third: that and the details.
        CHECK(q.requests.size() == s.asked.size() + 1 + 2);
    }
}

TEST_CASE("older QEMUs: one that names no nodes gets one clear error, not an empty chain" *
          doctest::test_suite("block")) {
    old_qemu q("2.2");
    qmp::sync_client cl;
    cl.connect(q.server.endpoint());
    qmp::driver_cache drivers;
    std::error_code ec;
    qmp::diagnostics diag;
    auto g = qmp::query_block_graph(cl, {}, &drivers, ec, diag);
    CHECK(ec == qmp::block_error::unnamed_nodes);
    CHECK(diag.message.find("no node-name") != std::string::npos);
    CHECK(diag.message.find("drive-virtio-disk0") != std::string::npos);
    CHECK(g.nodes().empty());
    CHECK_THROWS_AS(qmp::query_block_graph(cl, {}, &drivers), qmp::qmp_error);
    cl.close();
}

TEST_CASE("older QEMUs: offers given by the caller are used as they are" * doctest::test_suite("block")) {
    // 3.1's replies with the caller's word that there is no query-nodes:
    // the snapshot uses the backend blockstats alone, asks no schema.
    old_qemu q("3.1");
    qmp::sync_client cl;
    cl.connect(q.server.endpoint());
    qmp::graph_query_options opts;
    opts.offers = qmp::block_query_offers{};
    opts.offers->graph_command = false;
    opts.offers->flat = false;
    opts.offers->query_nodes = false;
    qmp::driver_cache drivers;
    auto g = qmp::query_block_graph(cl, opts, &drivers);
    CHECK(drivers.probes == 0);
    REQUIRE(g.find("#block212"));
    CHECK(g.find("#block212")->wr_highest_offset == std::optional<std::uint64_t>(3221225472u));
    cl.close();
    q.finish();
    // Every node of these chains is settled without its driver (storage by
    // having no children, the LUKS base and the raw node by blockstats), so
    // no details are asked either.
    CHECK(drivers.refreshes == 0);
    CHECK(q.asked() == std::set<std::string>{"qmp_capabilities", "query-blockstats"});
}
