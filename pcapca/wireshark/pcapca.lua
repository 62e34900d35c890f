-- pcapca.lua: typed, filterable fields from the comments `pcapca annotate`
-- writes (pcapca.pv, pcapca.command, pcapca.role, pcapca.latency,
-- pcapca.request_frame, pcapca.problem). A post-dissector: it reads only
-- frame.comment, never the packet bytes. Works with Wireshark/tshark 3.6+.
-- The comment format is in docs/wireshark.md; install: `pcapca wireshark install`.

local FORMAT = 1              -- the tag version this plugin reads: [pcapca/1 ...]
local MAX_MESSAGES = 1000     -- tree items per packet (a comment per message)

local proto = Proto("pcapca", "pcapca (EPICS Channel Access, from pcapca annotate)")

local frame_request = frametype and frametype.REQUEST or nil   -- (3.4+: a link)
local f = {
    message = ProtoField.string("pcapca.message", "Message"),
    pv = ProtoField.string("pcapca.pv", "PV"),
    command = ProtoField.string("pcapca.command", "CA command"),
    role = ProtoField.string("pcapca.role", "Sent by"),
    latency = ProtoField.double("pcapca.latency", "Latency (s)"),
    request_frame = ProtoField.framenum("pcapca.request_frame", "Request in frame",
                                        base.NONE, frame_request),
    problem = ProtoField.string("pcapca.problem", "Problem"),
    format = ProtoField.string("pcapca.format", "Comment format"),
}
proto.fields = { f.message, f.pv, f.command, f.role, f.latency, f.request_frame,
                 f.problem, f.format }

local e_problem = ProtoExpert.new("pcapca.problem.expert", "pcapca problem",
                                  expert.group.PROTOCOL, expert.severity.WARN)
local e_format = ProtoExpert.new("pcapca.format.unknown", "Unknown pcapca comment format",
                                 expert.group.UNDECODED, expert.severity.WARN)
proto.experts = { e_problem, e_format }

local comment_field = Field.new("frame.comment")

-- the bytes of s that do not form valid UTF-8 written as \xNN (PV names
-- come from the wire; a string field holds UTF-8)
local function utf8_safe(s)
    if not s:find("[\128-\255]") then return s end
    local out, i, n = {}, 1, #s
    while i <= n do
        local c = s:byte(i)
        local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2
                    or (c >= 0xE0 and c <= 0xEF) and 3 or (c >= 0xF0 and c <= 0xF4) and 4 or 0
        local ok = len > 0 and i + len - 1 <= n
        for k = i + 1, i + len - 1 do
            if not ok then break end
            local b = s:byte(k)
            ok = b >= 0x80 and b <= 0xBF
        end
        if ok and len == 3 then        -- no overlong forms, no surrogates
            local b = s:byte(i + 1)
            ok = not (c == 0xE0 and b < 0xA0) and not (c == 0xED and b >= 0xA0)
        elseif ok and len == 4 then
            local b = s:byte(i + 1)
            ok = not (c == 0xF0 and b < 0x90) and not (c == 0xF4 and b >= 0x90)
        end
        if ok then
            out[#out + 1] = s:sub(i, i + len - 1)
            i = i + len
        else
            out[#out + 1] = string.format("\\x%02x", c)
            i = i + 1
        end
    end
    return table.concat(out)
end

local function unescape(v)
    return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- (text before the tag, version string, tag body) or nil when the comment
-- does not end with a pcapca tag. The tag holds no bracket (the PV is
-- %-escaped), so the last " [pcapca/" of the comment starts it.
local function split(comment)
    if comment:sub(-1) ~= "]" then return nil end
    local start, at = nil, 1
    while true do
        local s = comment:find(" [pcapca/", at, true)
        if not s then break end
        start, at = s, s + 1
    end
    if not start then return nil end
    local version, body = comment:match("^ %[pcapca/([%w.]+)(.*)%]$", start)
    if not version or body:find("[%[%]]") then return nil end
    return comment:sub(1, start - 1), version, body
end

local function add_message(root, text, body)
    local item = root:add(f.message, utf8_safe(text))
    local values, flags = {}, {}
    for token in body:gmatch("[^ ]+") do
        local key, value = token:match("^([%w_]+)=(.*)$")
        if key then values[key] = value else flags[token] = true end
    end
    if flags.problem then
        local problem = text:gsub("^pcapca: ", "", 1)
        problem = utf8_safe(problem)
        item:add(f.problem, problem)
        item:add_proto_expert_info(e_problem, problem)
        item:set_text("Problem: " .. problem)
        return
    end
    local cmd = values.cmd and values.cmd:match("^[%w_]+$")
    local role = values.role and values.role:match("^%a+$")
    if values.pv then item:add(f.pv, utf8_safe(unescape(values.pv))) end
    if cmd then item:add(f.command, cmd) end
    if role then item:add(f.role, role) end
    local req = values.req and values.req:match("^%d+$") and tonumber(values.req)
    if req and req >= 1 and req <= 4294967295 then item:add(f.request_frame, req) end
    local lat = values.lat and values.lat:match("^-?%d+%.?%d*$") and tonumber(values.lat)
    if lat then item:add(f.latency, lat) end
end

function proto.dissector(tvb, pinfo, tree)
    local comments = { comment_field() }
    local root, count = nil, 0
    for _, fi in ipairs(comments) do
        local comment = fi.value
        local text, version, body = split(comment)
        if text then
            if not root then root = tree:add(proto) end
            count = count + 1
            if count > MAX_MESSAGES then
                root:add_proto_expert_info(e_format, "more than " .. MAX_MESSAGES ..
                                           " pcapca comments in this packet: the rest not shown")
                break
            end
            if version == tostring(FORMAT) then
                add_message(root, text, body)
            else
                local item = root:add(f.format, utf8_safe(version))
                item:add_proto_expert_info(e_format, "pcapca comment format " ..
                    utf8_safe(version) .. " is unknown to this plugin (it reads format " ..
                    FORMAT .. "): install the plugin of the pcapca that wrote this file " ..
                    "(pcapca wireshark install)")
            end
        end
    end
    if root then
        root:append_text(count == 1 and " (1 message)" or " (" .. count .. " messages)")
    end
end

register_postdissector(proto)
