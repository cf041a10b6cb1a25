s¥
š
$c40eb6ac-f5c0-43a3-b59a-d1ef059fea1f	alertnameLegacy°ú×ØÒÁ¼ÿ"€²ø„*°ú×ØÒÁ¼ÿBtestJwritten before the state muxZ
	alertnameLegacy€á’…