// qmpctl chain and qmpctl resolve: read-only views of the chains. They read
// the state file for the numbers; they write it only to keep numbers they
// handed out, and a folder they cannot write costs a warning, not a failure.
// They answer from QEMU's cheap queries (structure, write high-water marks)
// unless --details asks for filenames, sizes and thresholds, which only
// query-named-block-nodes carries: a second or more on a deep chain whose
// images name their backing files relatively.
#include "commands.hpp"

#include <iostream>

namespace qmpctl {

namespace {

template <class Client>
bool load_resolver(Client& client, const cli& c, qmp::resolver& res) {
    auto journal = open_journal(c);
    qmp::threshold_state st = load_journal(journal.get());
    std::error_code ec;
    qmp::diagnostics diag;
    qmp::graph_query_options opts;
    opts.details = c.details ? qmp::details_need::fresh : qmp::details_need::none;
    qmp::driver_cache drivers;
    auto g = qmp::query_block_graph(client, opts, &drivers, ec, diag);
    if (ec) {
        std::cerr << "qmpctl: cannot read the block graph: " << ec.message() << ": " << diag.message << "\n";
        return false;
    }
    res = qmp::resolver(c.catalog);
    const qmp::index_registry before = st.registry;
    res.update(g, st.registry);
    // The numbers handed out are kept, if the file can be written (merged
    // with what others wrote); a read-only folder only costs a warning.
    if (journal && st.registry != before) {
        qmp::diagnostics d;
        if (journal->save(st, &d))
            std::cerr << "qmpctl: warning: the new indexes were not kept: " << d.message << "\n";
    }
    return true;
}

}  // namespace

template <class Client>
int run_chain(Client& client, const cli& c) {
    if (c.positional.size() > 2) throw usage_error{"chain takes at most one DISK"};
    qmp::resolver res;
    if (!load_resolver(client, c, res)) return exit_connection;
    std::vector<const qmp::disk_chain*> disks;
    if (c.positional.size() == 2) {
        std::error_code ec;
        auto* d = res.find_disk(c.positional[1], ec);
        if (!d) {
            std::cerr << "qmpctl: " << c.positional[1] << ": " << ec.message() << "\n";
            return exit_target;
        }
        disks.push_back(d);
    } else {
        for (const auto& d : res.disks()) disks.push_back(&d);
    }
    if (c.json_output) {
        qmp::json out = qmp::json::array();
        for (const auto* d : disks) {
            qmp::json els = qmp::json::array();
            for (const auto* chain : {&d->elements, &d->mirror})
                for (const auto& el : *chain) els.push_back(element_json(d->name, el));
            out.push_back({{"disk", d->name}, {"elements", els}});
        }
        std::cout << dump(out) << "\n";
        return exit_ok;
    }
    for (const auto* d : disks) {
        std::cout << d->name << " (device '" << d->backend.device << "', qdev '" << d->backend.qdev << "')\n";
        for (const auto* chain : {&d->elements, &d->mirror})
            for (const auto& el : *chain)
                std::cout << "  " << qmp::target{d->name, el.index}.indexed() << (el.mirror ? " mirror" : "")
                          << " depth " << el.depth << " format " << (el.format_node.empty() ? "-" : el.format_node)
                          << " storage " << el.storage_node << " " << el.driver.value_or("?") << " storage-size "
                          << text_or_dash(el.capacity) << " allocation " << text_or_dash(el.allocation)
                          << " threshold " << text_or_dash(el.storage_threshold) << " " << el.filename.value_or("")
                          << "\n";
    }
    return exit_ok;
}

template <class Client>
int run_resolve(Client& client, const cli& c) {
    const bool by_node = !c.node.empty();
    if (by_node ? c.positional.size() != 1 : c.positional.size() != 2)
        throw usage_error{"resolve needs TARGET or --node NODE"};
    std::error_code ec;
    qmp::diagnostics why;
    if (!by_node && !qmp::parse_target(c.positional[1], ec, &why)) {
        std::cerr << "qmpctl: " << why.message << "\n";
        return exit_target;
    }
    qmp::resolver res;
    if (!load_resolver(client, c, res)) return exit_connection;
    if (by_node) {
        auto loc = res.locate(c.node, ec);
        if (!loc) {
            std::cerr << "qmpctl: node " << c.node << ": " << ec.message() << "\n";
            return exit_target;
        }
        if (c.json_output) {
            auto j = element_json(loc->where.disk, loc->where.element);
            j["layer"] = qmp::to_string(loc->node_layer);
            j["active"] = loc->where.active;
            std::cout << dump(j) << "\n";
        } else {
            std::cout << loc->where.canonical().indexed() << " " << qmp::to_string(loc->node_layer)
                      << (loc->where.active ? " (active layer)" : "") << "\n";
        }
        return exit_ok;
    }
    auto r = res.resolve(c.positional[1], ec, &why);
    if (!r) {
        std::cerr << "qmpctl: " << why.message << "\n";
        return exit_target;
    }
    if (c.json_output) {
        auto j = element_json(r->disk, r->element);
        j["active"] = r->active;
        std::cout << dump(j) << "\n";
    } else {
        std::cout << r->canonical().indexed() << " (" << layer_text(r->element) << ") format "
                  << (r->element.format_node.empty() ? "-" : r->element.format_node) << " storage "
                  << r->element.storage_node << " " << r->element.filename.value_or("") << "\n";
    }
    return exit_ok;
}

#define QMPCTL_INSTANTIATE(C) template int run_chain<C>(C&, const cli&); template int run_resolve<C>(C&, const cli&);
QMPCTL_FOR_EACH_CLIENT(QMPCTL_INSTANTIATE)

}  // namespace qmpctl
