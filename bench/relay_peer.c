/* relay_peer: the plain gst-rtsp-server relay that bench/bench_relay.py
 * measures vigil's relay against. It is what one would otherwise set up:
 * one shared media per mount, "rtspsrc ! rtph264depay ! rtph264pay", so one
 * camera connection per mount however many clients watch.
 *
 *   relay_peer URL     serves URL at rtsp://127.0.0.1:PORT/peer
 *
 * Prints "READY port=N" once listening. Not part of vigil: a bench tool,
 * built by bench_relay.py. */
#include <stdio.h>
#include <stdlib.h>

#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

static gboolean on_quit(gpointer loop)
{
	g_main_loop_quit(loop);
	return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: relay_peer RTSP-URL\n");
		return 2;
	}
	gst_init(NULL, NULL);
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	GstRTSPServer *server = gst_rtsp_server_new();
	gst_rtsp_server_set_address(server, "127.0.0.1");
	gst_rtsp_server_set_service(server, "0");
	GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new();
	gchar *launch = g_strdup_printf(
		"( rtspsrc location=%s protocols=tcp latency=200 ! rtph264depay ! "
		"rtph264pay name=pay0 pt=96 config-interval=-1 )", argv[1]);
	gst_rtsp_media_factory_set_launch(factory, launch);
	gst_rtsp_media_factory_set_shared(factory, TRUE);
	g_free(launch);
	GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(server);
	gst_rtsp_mount_points_add_factory(mounts, "/peer", factory);
	g_object_unref(mounts);
	if (gst_rtsp_server_attach(server, NULL) == 0) {
		fprintf(stderr, "relay_peer: cannot listen\n");
		return 1;
	}
	g_unix_signal_add(SIGINT, on_quit, loop);
	g_unix_signal_add(SIGTERM, on_quit, loop);
	printf("READY port=%d\n", gst_rtsp_server_get_bound_port(server));
	fflush(stdout);
	g_main_loop_run(loop);
	g_object_unref(server);
	g_main_loop_unref(loop);
	return 0;
}
