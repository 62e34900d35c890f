"""CA command ids by name: caproto's command classes' ``ID``, for code that reads raw headers."""
from __future__ import annotations

import caproto

VERSION = caproto.VersionRequest.ID                  # 0
EVENT_ADD = caproto.EventAddRequest.ID               # 1 (subscribe; the server's updates)
EVENT_CANCEL = caproto.EventCancelRequest.ID         # 2
READ = caproto.ReadRequest.ID                        # 3
WRITE = caproto.WriteRequest.ID                      # 4
SEARCH = caproto.SearchRequest.ID                    # 6
READ_SYNC = caproto.ReadSyncRequest.ID               # 10 (rsrv answers it: no caproto reply class)
CLEAR_CHANNEL = caproto.ClearChannelRequest.ID       # 12
READ_NOTIFY = caproto.ReadNotifyRequest.ID           # 15
CREATE_CHAN = caproto.CreateChanRequest.ID           # 18
WRITE_NOTIFY = caproto.WriteNotifyRequest.ID         # 19
CLIENT_NAME = caproto.ClientNameRequest.ID           # 20
HOST_NAME = caproto.HostNameRequest.ID               # 21
ACCESS_RIGHTS = caproto.AccessRightsResponse.ID      # 22
