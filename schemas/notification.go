package schemas

// NotificationV1 is the file name, inside FS, of the notification event
// schema: a verified WeChat Pay contract notification as the notify
// endpoint publishes it.
const NotificationV1 = "notification.v1.json"
